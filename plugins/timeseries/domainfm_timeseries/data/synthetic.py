"""The embedded default dataset: a generated hourly multi-seasonal series with exogenous drivers.

Two loads share daily and weekly cycles, a slow trend and AR(1) noise; ``temperature`` is a
known-future driver (as a weather forecast would be) that raises both loads; ``humidity`` is
observed in the past only. Generated from a fixed seed in well under a second, so tests and
demos need no download.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# (targets, past-only exogenous, known-future exogenous)
SYNTHETIC_COLUMNS = (("load_a", "load_b"), ("humidity",), ("temperature",))


def synthetic_frame(rows: int = 2000, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """``rows`` hourly rows from ``start``: a ``date`` column and the four channels."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float64)
    daily, weekly = 2 * np.pi * t / 24, 2 * np.pi * t / (24 * 7)
    temperature = 10 + 6 * np.sin(daily - 2.0) + 3 * np.sin(2 * np.pi * t / (24 * 30)) \
        + rng.normal(0, 0.5, rows)
    humidity = 60 - 2 * (temperature - 10) + rng.normal(0, 2, rows)
    noise = np.zeros((rows, 2))
    shocks = rng.normal(0, 0.3, (rows, 2))
    for i in range(1, rows):
        noise[i] = 0.8 * noise[i - 1] + shocks[i]
    load_a = 50 + 8 * np.sin(daily) + 4 * np.sin(weekly) + 0.002 * t + 0.8 * temperature + noise[:, 0]
    load_b = 20 + 3 * np.sin(daily + 1.0) + 2 * np.cos(weekly) + 0.5 * temperature + noise[:, 1]
    return pd.DataFrame({
        "date": pd.date_range(start, periods=rows, freq="h"),
        "load_a": load_a, "load_b": load_b, "humidity": humidity, "temperature": temperature,
    })

