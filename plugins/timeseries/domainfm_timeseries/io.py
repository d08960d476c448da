"""Tabular time series files (CSV, TSV, Parquet) read and checked into clean numeric arrays.

Wide form: one row per timestamp (per series), one column per channel. Long form: one row per
(timestamp, [series,] variable) with a value column, pivoted to wide. :class:`Columns` names
the role of each column (targets, past-only and known-future exogenous, timestamp, series id);
it travels with a trained model in its data specification, so a predictor reads new files the
way training did.

Every check a user can trip (an unreadable, empty or ragged file, a missing or non-numeric
column, empty or infinite values, unparseable, duplicate, unsorted or irregular timestamps)
raises :class:`~domainfm.errors.DataError` with one line naming the file (and column, series,
row or value) and what was expected; no pandas or pyarrow error escapes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from domainfm.errors import DataError
from domainfm_timeseries.frequency import FrequencyError, infer_frequency

Fill = Literal["error", "ffill", "interpolate", "zero"]
Layout = Literal["wide", "long"]


@dataclass
class Series:
    """One series: regular timestamps, channels in the order targets, past exog, future exog."""

    name: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray  # (T, C) float32
    freq: str | None


@dataclass(frozen=True)
class Columns:
    """Roles of a table's columns; ``inputs`` is the channel order models read."""

    targets: tuple[str, ...]
    past_exog: tuple[str, ...] = ()
    future_exog: tuple[str, ...] = ()
    timestamp: str = "date"
    id: str | None = None

    @property
    def inputs(self) -> list[str]:
        return [*self.targets, *self.past_exog, *self.future_exog]

    @classmethod
    def resolve(cls, available: list[str], *, targets: list[str] | None = None,
                past_exog: list[str] | None = None, future_exog: list[str] | None = None,
                timestamp: str = "date", id: str | None = None) -> Columns:  # noqa: A002
        """Unset targets are every column that is not the timestamp, the id or exogenous."""
        past, future = tuple(past_exog or ()), tuple(future_exog or ())
        if targets is None:
            skip = {timestamp, id, *past, *future}
            targets = [c for c in available if c not in skip]
        return cls(tuple(targets), past, future, timestamp, id)

    def head_hints(self) -> dict[str, list[int]]:
        """Channel indices for the forecasting heads (targets first, known-future last); none
        when every channel is a target."""
        if not self.past_exog and not self.future_exog:
            return {}
        n, total = len(self.targets), len(self.inputs)
        hints = {"prediction_channels": list(range(n))}
        if self.future_exog:
            hints["exogenous_channels"] = list(range(total - len(self.future_exog), total))
        return hints

    def to_task(self) -> dict[str, Any]:
        task: dict[str, Any] = {"target_columns": list(self.targets),
                                "past_exog_columns": list(self.past_exog),
                                "future_exog_columns": list(self.future_exog),
                                "timestamp_column": self.timestamp}
        if self.id is not None:
            task["id_column"] = self.id
        return task

    @classmethod
    def from_task(cls, task: Mapping[str, Any], available: list[str]) -> Columns:
        """The columns a data specification's ``task`` names (targets: every other column when
        it names none, as for a model trained on the univariate pretraining mixture)."""
        return cls.resolve(available, targets=task.get("target_columns") or None,
                           past_exog=task.get("past_exog_columns"),
                           future_exog=task.get("future_exog_columns"),
                           timestamp=task.get("timestamp_column", "date"), id=task.get("id_column"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_table(path: Path) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower()
    parquet = suffix.endswith((".parquet", ".pq"))
    if not parquet and not any(s in suffix for s in (".csv", ".tsv", ".txt")):
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected .csv, .tsv or .parquet")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (expected a header row and rows of values)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if parquet:
                return pd.read_parquet(path)
            return pd.read_csv(path, sep="\t" if ".tsv" in suffix else ",")
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's, named here
        kind = "Parquet" if parquet else "CSV"
        raise DataError(f"{path}: not a readable {kind} table of equal-length rows (truncated, "
                        f"garbled or ragged?): {_first_line(exc)}") from None


def read_frame(path: str | Path, *, layout: Layout = "wide", timestamp_column: str = "date",
               id_column: str | None = None, variable_column: str = "variable",
               value_column: str = "value") -> pd.DataFrame:
    """Read CSV or Parquet into a wide DataFrame (long form is pivoted)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: the data file does not exist (expected a CSV, TSV or Parquet "
                        "table)")
    frame = _read_table(path)
    if frame.empty:
        raise DataError(f"{path}: the table holds no rows (only a header?)")
    needed = [timestamp_column] + ([id_column] if id_column else [])
    if layout == "long":
        needed += [variable_column, value_column]
    for column in needed:
        if column not in frame.columns:
            what = ("timestamp" if column == timestamp_column else "series id"
                    if column == id_column else "long-layout")
            raise DataError(f"{path}: no {what} column {column!r}; columns are "
                            f"{list(frame.columns)}")
    if layout == "long":
        index = [timestamp_column] + ([id_column] if id_column else [])
        duplicated = frame.duplicated(index + [variable_column])
        if duplicated.any():
            row = frame[duplicated].iloc[0]
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
    values = frame[columns].apply(pd.to_numeric).to_numpy(dtype=np.float64, copy=True)
    empty = [c for c, column in zip(columns, values.T) if np.isnan(column).all()]
    if empty:
        raise DataError(f"{where}: column(s) {empty} hold no values (every cell is empty or NaN)")
    if np.isinf(values).any():
        row, col = map(int, np.argwhere(np.isinf(values))[0])
        raise DataError(f"{where}: column {columns[col]!r} holds an infinite value at row {row}")
    too_big = np.abs(np.nan_to_num(values)) > np.finfo(np.float32).max
    if too_big.any():
        row, col = map(int, np.argwhere(too_big)[0])
        raise DataError(f"{where}: column {columns[col]!r} holds {values[row, col]:g} at row "
                        f"{row}, beyond float32")
    return values.astype(np.float32)


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


def parse_timestamps(values: pd.Series, column: str, where: str) -> pd.DatetimeIndex:
    """Timestamps parsed, present, unique and sorted; errors name the first offending value."""
    with warnings.catch_warnings():  # pandas warns when it guesses a format per element
        warnings.simplefilter("ignore")
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(values))
        except (ValueError, TypeError, OverflowError) as exc:
            coerced = pd.to_datetime(values, errors="coerce")
            bad = np.flatnonzero(coerced.isna().to_numpy() & values.notna().to_numpy())
            if not len(bad):
                raise DataError(f"{where}: column {column!r} is not parseable as timestamps: "
                                f"{_first_line(exc)}") from None
            row = int(bad[0])
            hint = "; the last row is incomplete: is the file truncated?" if row == len(values) - 1 else ""
            raise DataError(f"{where}: column {column!r} is not parseable as timestamps: row "
                            f"{row} holds {values.iloc[row]!r} (expected a date and time like "
                            f"{values.iloc[0]!r}){hint}") from None
    if stamps.hasnans:
        raise DataError(f"{where}: column {column!r} has empty timestamps")
    if stamps.has_duplicates:
        dup = stamps[stamps.duplicated()][0]
        raise DataError(f"{where}: duplicate timestamp {dup} in column {column!r}; "
                        "each timestamp must appear once per series")
    if not stamps.is_monotonic_increasing:
        pos = int(np.flatnonzero(np.diff(stamps.values) < np.timedelta64(0))[0])
        raise DataError(f"{where}: timestamps are not sorted: {stamps[pos + 1]} (row "
                        f"{pos + 1}) comes after {stamps[pos]}; sort the file by time")
    return stamps


def to_series(frame: pd.DataFrame, *, columns: list[str], timestamp_column: str = "date",
              id_column: str | None = None, fill_missing: Fill = "error",
              freq: str | None = None, where: str = "data") -> list[Series]:
    """Split by series id, check timestamps (parsed, unique, sorted, regular), fill or reject NaN."""
    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"{where}: no series id column {id_column!r}")
    groups = [("series", frame)] if id_column is None else list(frame.groupby(id_column, sort=True))
    out = []
    for name, group in groups:
        label = f"{where}" + (f", series {name!r}" if id_column else "")
        stamps = parse_timestamps(group[timestamp_column], timestamp_column, label)
        try:
            series_freq = freq or infer_frequency(stamps, where=label)
        except FrequencyError as exc:
            raise DataError(str(exc)) from None
        values = _fill(_numeric(group.reset_index(drop=True), columns, label), columns,
                       fill_missing, label, stamps)
        out.append(Series(str(name), stamps, values, series_freq))
    return out
