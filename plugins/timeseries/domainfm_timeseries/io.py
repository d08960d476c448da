"""Tabular time series files (CSV, Parquet) read and checked into clean numeric arrays.

Wide form: one row per timestamp (per series), one column per channel. Long form: one row per
(timestamp, [series,] variable) with a value column, pivoted to wide. Every check a user can
trip names the file, column, series and value, and says what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from domainfm.errors import DomainfmError
from domainfm_timeseries.frequency import infer_frequency

Fill = Literal["error", "ffill", "interpolate", "zero"]
Layout = Literal["wide", "long"]


class DataError(DomainfmError):
    pass


@dataclass
class Series:
    """One series: regular timestamps, channels in the order targets, past exog, future exog."""

    name: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray  # (T, C) float32
    freq: str | None


def read_frame(path: str | Path, *, layout: Layout = "wide", timestamp_column: str = "date",
               id_column: str | None = None, variable_column: str = "variable",
               value_column: str = "value") -> pd.DataFrame:
    """Read CSV or Parquet into a wide DataFrame (long form is pivoted)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        frame = pd.read_parquet(path)
    elif ".csv" in suffix or ".tsv" in suffix or suffix.endswith(".txt"):
        frame = pd.read_csv(path, sep="\t" if ".tsv" in suffix else ",")
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected .csv, .tsv or .parquet")
    if timestamp_column not in frame.columns:
        raise DataError(f"{path}: no timestamp column {timestamp_column!r}; columns are "
                        f"{list(frame.columns)} (set timestamp_column)")
    if layout == "long":
        for column in (variable_column, value_column):
            if column not in frame.columns:
                raise DataError(f"{path}: long layout needs a {column!r} column; columns are "
                                f"{list(frame.columns)}")
        index = [timestamp_column] + ([id_column] if id_column else [])
        if frame.duplicated(index + [variable_column]).any():
            row = frame[frame.duplicated(index + [variable_column])].iloc[0]
            raise DataError(f"{path}: duplicate rows for {dict(row[index + [variable_column]])}")
        frame = frame.pivot(index=index, columns=variable_column, values=value_column)
        frame = frame.reset_index()
        frame.columns.name = None
    return frame


def _numeric(frame: pd.DataFrame, columns: list[str], where: str) -> np.ndarray:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; available: {list(frame.columns)}")
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            converted = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][converted.isna() & frame[column].notna()]
            if len(bad):
                raise DataError(f"{where}: column {column!r} must be numeric, but row "
                                f"{bad.index[0]} holds {bad.iloc[0]!r} (dtype {frame[column].dtype})")
    return frame[columns].apply(pd.to_numeric).to_numpy(dtype=np.float32, copy=True)


def _fill(values: np.ndarray, columns: list[str], fill: Fill, where: str,
          timestamps: pd.DatetimeIndex) -> np.ndarray:
    nan = np.isnan(values)
    if not nan.any():
        return values
    if fill == "error":
        row, col = map(int, np.argwhere(nan)[0])
        raise DataError(f"{where}: {int(nan.sum())} missing value(s), first in column "
                        f"{columns[col]!r} at {timestamps[row]}; pass fill_missing='ffill', "
                        "'interpolate' or 'zero' to fill them")
    frame = pd.DataFrame(values)
    if fill == "zero":
        frame = frame.fillna(0.0)
    else:
        frame = frame.interpolate(limit_direction="both") if fill == "interpolate" else frame.ffill().bfill()
    return frame.to_numpy(dtype=np.float32)


def to_series(frame: pd.DataFrame, *, columns: list[str], timestamp_column: str = "date",
              id_column: str | None = None, fill_missing: Fill = "error",
              freq: str | None = None, where: str = "data") -> list[Series]:
    """Split by series id, check timestamps (parsed, unique, sorted, regular), fill or reject NaN."""
    groups = [("series", frame)] if id_column is None else list(frame.groupby(id_column, sort=True))
    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"{where}: no series id column {id_column!r}")
    out = []
    for name, group in groups:
        label = f"{where}" + (f", series {name!r}" if id_column else "")
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(group[timestamp_column]))
        except (ValueError, TypeError) as exc:
            raise DataError(f"{label}: column {timestamp_column!r} is not parseable as "
                            f"timestamps: {exc}") from None
        if stamps.hasnans:
            raise DataError(f"{label}: column {timestamp_column!r} has empty timestamps")
        if stamps.has_duplicates:
            dup = stamps[stamps.duplicated()][0]
            raise DataError(f"{label}: duplicate timestamp {dup} in column {timestamp_column!r}; "
                            "each timestamp must appear once per series")
        if not stamps.is_monotonic_increasing:
            pos = int(np.flatnonzero(np.diff(stamps.values) < np.timedelta64(0))[0])
            raise DataError(f"{label}: timestamps are not sorted: {stamps[pos + 1]} (row "
                            f"{pos + 1}) comes after {stamps[pos]}; sort the file by time")
        series_freq = freq or infer_frequency(stamps, where=label)
        values = _fill(_numeric(group.reset_index(drop=True), columns, label), columns,
                       fill_missing, label, stamps)
        out.append(Series(str(name), stamps, values, series_freq))
    return out
