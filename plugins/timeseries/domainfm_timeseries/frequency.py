"""Sampling frequency: inferred from timestamps, mapped to TTM's resolution-prefix token.

granite-tsfm keys its prefix token on a fixed vocabulary of pandas alias strings and crashes on
anything else ("W-SUN", "MS", "15T", "2h"...). Here a frequency is first turned into a nominal
duration, and the token is the vocabulary entry nearest in log-duration (within a factor of 1.5);
anything further (monthly, yearly, irregular) gets the out-of-vocabulary token 0, which is what
granite assigns to unknown resolutions. The vocabulary order is granite's, so official weights
that use the prefix token see the tokens they were trained with.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from domainfm.errors import DomainfmError

# granite-tsfm DEFAULT_FREQUENCY_MAPPING: token -> nominal duration in seconds
RESOLUTION_TOKENS: dict[int, float] = {
    1: 60.0, 2: 120.0, 3: 300.0, 4: 600.0, 5: 900.0, 6: 1800.0,
    7: 3600.0, 8: 86400.0, 9: 7 * 86400.0,
}
OOV_TOKEN = 0
VOCAB_SIZE = 10


class FrequencyError(DomainfmError):
    pass


def offset_seconds(freq: str | pd.DateOffset) -> float:
    """Nominal duration of a pandas frequency in seconds (months and years by calendar span)."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise FrequencyError(f"unknown frequency {freq!r}: expected a pandas offset alias "
                             "such as 'h', '15min', 'D', 'W', 'MS'") from exc
    start = pd.Timestamp("2001-01-01")
    return float(((start + offset) - start) / pd.Timedelta(seconds=1))


def resolution_token(freq: str | pd.DateOffset | None) -> int:
    """Prefix token for ``freq``; never raises for a valid pandas frequency (OOV instead)."""
    if freq is None:
        return OOV_TOKEN
    return token_for_seconds(offset_seconds(freq))


def infer_frequency(timestamps: pd.DatetimeIndex | pd.Series, *, where: str = "data",
                    allow_irregular: bool = False) -> str | None:
    """The pandas alias of a regular timestamp index, or an error naming what is wrong.

    ``pd.infer_freq`` recognises calendar frequencies (month starts, business days); a
    constant step it does not name is returned as a fixed offset. A gap (missing rows) makes the
    index irregular: that is an error unless ``allow_irregular`` (then None: OOV token).
    """
    index = pd.DatetimeIndex(timestamps)
    if len(index) < 3:
        raise FrequencyError(f"{where}: need at least 3 timestamps to infer a frequency, "
                             f"got {len(index)}")
    freq = pd.infer_freq(index)
    if freq is not None:
        return freq
    steps = np.diff(index.values.astype("datetime64[ns]")).astype(np.int64)  # any unit
    values, counts = np.unique(steps, return_counts=True)
    if len(values) == 1:
        return pd.tseries.frequencies.to_offset(pd.Timedelta(int(values[0]), "ns")).freqstr
    if allow_irregular:
        return None
    common = pd.Timedelta(int(values[counts.argmax()]), "ns")
    odd = int(np.flatnonzero(steps != values[counts.argmax()])[0])
    raise FrequencyError(
        f"{where}: timestamps are irregular (most steps are {common}, but row {odd + 1} at "
        f"{index[odd + 1]} follows {index[odd]} by {pd.Timedelta(int(steps[odd]), 'ns')}); "
        "resample or fill the gaps first, or pass an explicit freq"
    )


def continue_index(last: pd.Timestamp, freq: str, periods: int) -> pd.DatetimeIndex:
    """``periods`` timestamps after ``last`` at ``freq`` (forecast timestamps)."""
    return pd.date_range(last, periods=periods + 1, freq=freq)[1:]


def token_for_seconds(seconds: float) -> int:
    """Prefix token of a resolution given as a duration (used after downsampling)."""
    token, dist = min(((t, abs(math.log(seconds / s))) for t, s in RESOLUTION_TOKENS.items()),
                      key=lambda item: item[1])
    return token if seconds > 0 and dist <= math.log(1.5) else OOV_TOKEN
