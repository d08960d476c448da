"""Datasets of the time-series plugin, one module each: ``forecast`` (``timeseries.csv``) and
``mixture`` (``timeseries.mixture``), on the shared windowing of ``windows`` and the embedded
``synthetic`` series."""
