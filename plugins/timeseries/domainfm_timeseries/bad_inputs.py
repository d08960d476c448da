"""Broken tables of every kind a user sends, for the conformance harness's bad-input matrix.

Each case writes one broken CSV/Parquet file and says what the one-line error must name (the
file); the harness runs it through the CLI and requires exit status 2, that one line, no
traceback and nothing written. The plugin README lists the cases with the messages users see
(``bench/bad_inputs.py --plugin timeseries`` prints them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from domainfm.records import BadInput
from domainfm_timeseries.data.synthetic import SYNTHETIC_COLUMNS, synthetic_frame

TARGETS, PAST, FUTURE = (list(c) for c in SYNTHETIC_COLUMNS)
ROLES = {"target_columns": TARGETS, "past_exog_columns": PAST, "future_exog_columns": FUTURE}

Writer = Callable[[Path], None]


def _frame_writer(frame: pd.DataFrame) -> Writer:
    return lambda path: frame.to_csv(path, index=False)


def _text_writer(text: str | bytes) -> Writer:
    return lambda path: path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _set(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    """A copy of ``frame`` with one cell replaced (the column made ``object`` for text)."""
    frame = frame.astype({column: object}) if isinstance(value, str) else frame.copy()
    frame.loc[row, column] = value
    return frame


def _garbled() -> bytes:
    return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def _truncated_parquet(frame: pd.DataFrame) -> Writer:
    def write(path: Path) -> None:
        frame.to_parquet(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return write


def _common(frame: pd.DataFrame) -> dict[str, Writer | None]:
    """Broken versions of ``frame`` that every reader must refuse the same way."""
    text = frame.to_csv(index=False)
    lines = text.splitlines()
    return {
        "missing file": None,
        "empty file": _text_writer(""),
        "header only": _text_writer(lines[0] + "\n"),
        "garbled bytes": _text_writer(_garbled()),
        "ragged rows": _text_writer("\n".join(lines[:12] + [lines[12] + ",1.5,2.5"] + lines[13:])),
        "missing target column": _frame_writer(frame.drop(columns=["load_a"])),
        "missing exogenous column": _frame_writer(frame.drop(columns=["temperature"])),
        "NaN-only column": _frame_writer(frame.assign(humidity=np.nan)),
        "non-numeric column": _frame_writer(_set(frame, 7, "load_b", "n/a?")),
        "duplicate timestamps": _frame_writer(_set(frame, 10, "date", frame.loc[9, "date"])),
        "unparseable timestamps": _frame_writer(_set(frame, 4, "date", "yesterday")),
    }


def _cases(folder: Path, writers: dict[str, Writer | None], suffix: str = ".csv"
           ) -> list[tuple[str, Path]]:
    out = []
    for name, write in writers.items():
        path = Path(folder) / (name.replace(" ", "_").replace("-", "_").lower() + suffix)
        if write is not None:
            write(path)
        out.append((name, path))
    return out


def forecast_cases(folder: Path) -> list[BadInput]:
    """Broken inputs of ``timeseries.csv`` (its tiny parameters, the synthetic roles)."""
    frame = synthetic_frame(rows=300, seed=0)
    lines = frame.to_csv(index=False).splitlines()
    writers: dict[str, Writer | None] = {
        **_common(frame),
        "truncated CSV": _text_writer("\n".join(lines[:150]) + "\n" + lines[150][:12]),
        "missing value": _frame_writer(_set(frame, 20, "load_b", np.nan)),
        "infinite value": _frame_writer(_set(frame, 5, "load_b", np.inf)),
        "too short for context + horizon": _frame_writer(frame.head(60)),
        "unsorted timestamps": _frame_writer(frame.iloc[[*range(10), 11, 10, *range(12, 300)]]),
        "irregular timestamps": _frame_writer(frame.drop(index=[50])),
        "no timestamp column": _frame_writer(frame.rename(columns={"date": "time"})),
    }
    cases = [BadInput(name, expect=path.name, params={"path": str(path), **ROLES})
             for name, path in _cases(folder, writers)]
    parquet = Path(folder) / "truncated.parquet"
    _truncated_parquet(frame)(parquet)
    cases.append(BadInput("truncated Parquet", expect=parquet.name,
                          params={"path": str(parquet), **ROLES}))
    short = Path(folder) / "shorter_than_the_split.csv"
    frame.to_csv(short, index=False)
    cases.append(BadInput("shorter than the ETT split", expect=short.name,
                          params={"path": str(short), "split": "ett_hourly", **ROLES}))
    cases.append(BadInput("no test window", expect=short.name,
                          params={"path": str(short), "split_ratios": [0.9, 0.05], **ROLES}))
    return cases


def mixture_cases(folder: Path) -> list[BadInput]:
    """Broken files in the pretraining corpus of ``timeseries.mixture``."""
    frame = synthetic_frame(rows=600, seed=0)
    common = _common(frame)
    writers = {name: common[name] for name in ("missing file", "empty file", "garbled bytes",
                                                "non-numeric column", "duplicate timestamps")}
    writers["too short at every resolution"] = _frame_writer(frame.head(90))
    return [BadInput(name, expect=path.name, params={"paths": [str(path)]})
            for name, path in _cases(folder, writers)]


def predictor_cases(folder: Path) -> list[BadInput]:
    """Broken histories for ``timeseries.forecast_csv`` (a model trained on the synthetic roles:
    200 rows of history, then 96 rows with only the known-future exogenous filled)."""
    frame = synthetic_frame(rows=296, seed=1)
    frame.loc[200:, TARGETS + PAST] = np.nan
    writers: dict[str, Writer | None] = {
        **_common(frame),
        "no known-future rows": _frame_writer(frame.head(200)),
        "empty known-future cells": _frame_writer(_set(frame, 205, "temperature", np.nan)),
        "missing history value": _frame_writer(_set(frame, 20, "load_a", np.nan)),
        "history shorter than a patch": _frame_writer(frame.iloc[195:]),
    }
    return [BadInput(name, expect=path.name, source=str(path))
            for name, path in _cases(folder, writers)]
