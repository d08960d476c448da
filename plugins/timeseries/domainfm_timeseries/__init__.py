"""domainfm time-series plugin: TTM (Tiny Time Mixers) forecasting on tabular series."""

__version__ = "0.1.0"
