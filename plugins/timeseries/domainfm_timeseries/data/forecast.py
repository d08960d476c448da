"""``timeseries.csv``: forecasting windows of one CSV/Parquet table, split by time, scaled on the
training split.

``setup`` reads and checks the whole file (see io.py) before anything is written, fits the
scaler on the training rows only and cuts every split's windows (data/windows.py). The data
specification carries what a model needs to forecast new files with the training data gone:
the column roles, the fitted scaler, the frequency, context and horizon, and the channel
indices the forecasting heads read (``prediction_channels``, ``exogenous_channels``).
Without ``path`` the embedded synthetic hourly series is used (data/synthetic.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from domainfm.errors import ConfigError, DataError
from domainfm.io import atomic_path
from domainfm.records import Fraction, NonNegativeInt, PositiveInt, Range
from domainfm.spec import DataSpec
from domainfm_timeseries.data.synthetic import SYNTHETIC_COLUMNS, synthetic_frame
from domainfm_timeseries.data.windows import (
    SPLITS,
    FewShotLocation,
    SplitPreset,
    Stage,
    WindowDataset,
    collate_batch,
    forecast_keys,
    select_fraction,
    split_bounds,
    window_starts,
)
from domainfm_timeseries.frequency import offset_seconds, resolution_token
from domainfm_timeseries.io import Columns, Fill, Layout, Series, read_frame, to_series
from domainfm_timeseries.scaler import StandardScaler

FewShot = Annotated[float, Range(gt=0, le=1)]


class ForecastDataModule(pl.LightningDataModule):
    """Windows of one CSV/Parquet file (or the embedded synthetic series) for forecasting."""

    def __init__(self, *, path: str | None = None, layout: Layout = "wide",
                 timestamp_column: str = "date", target_columns: list[str] | None = None,
                 past_exog_columns: list[str] | None = None,
                 future_exog_columns: list[str] | None = None, id_column: str | None = None,
                 variable_column: str = "variable", value_column: str = "value",
                 freq: str | None = None, fill_missing: Fill = "error",
                 split: SplitPreset = "ratio",
                 split_ratios: list[Fraction] = [0.7, 0.1],  # noqa: B006 - never mutated
                 context_length: PositiveInt = 512, prediction_length: PositiveInt = 96,
                 stride: PositiveInt = 1, scale: bool = True, few_shot: FewShot = 1.0,
                 few_shot_location: FewShotLocation = "last", batch_size: PositiveInt = 64,
                 eval_batch_size: PositiveInt = 256, num_workers: NonNegativeInt = 0,
                 seed: int = 0, synthetic_rows: PositiveInt = 2000) -> None:
        super().__init__()
        self.params = dict(locals())
        self.params.pop("self")
        self.params.pop("__class__", None)
        if freq is not None:
            offset_seconds(freq)  # fail early on an unknown alias
        if len(split_ratios) != 2 or sum(split_ratios) >= 1:
            raise ConfigError(f"data.params.split_ratios={split_ratios} must be [train, val] "
                              "fractions summing to less than 1 (the rest is the test split)")
        self.where = path if path is not None else "the embedded synthetic series"
        self.datasets: dict[Stage, WindowDataset] = {}
        self.keys: dict[Stage, list[str]] = {}
        self.scaler: StandardScaler | None = None
        self.series: list[Series] = []

    # --------------------------------------------------------------- reading
    def _frame(self) -> pd.DataFrame:
        p = self.params
        if p["path"] is None:
            return synthetic_frame(rows=p["synthetic_rows"], seed=p["seed"])
        return read_frame(p["path"], layout=p["layout"], timestamp_column=p["timestamp_column"],
                          id_column=p["id_column"], variable_column=p["variable_column"],
                          value_column=p["value_column"])

    def _columns(self, available: list[str]) -> Columns:
        p = self.params
        targets, past, future = p["target_columns"], p["past_exog_columns"], p["future_exog_columns"]
        if p["path"] is None and targets is None:
            targets, past, future = (list(c) for c in SYNTHETIC_COLUMNS)
        columns = Columns.resolve(available, targets=targets, past_exog=past, future_exog=future,
                                  timestamp=p["timestamp_column"], id=p["id_column"])
        if not columns.targets:
            raise DataError(f"{self.where}: no target columns (columns are {available}); set "
                            "target_columns")
        roles = [*columns.inputs, columns.timestamp] + ([columns.id] if columns.id else [])
        twice = sorted({c for c in roles if roles.count(c) > 1})
        if twice:
            raise ConfigError(f"data.params: column(s) {twice} are given more than one role "
                              "(target, exogenous, timestamp or id)")
        return columns

    def setup(self, stage: str | None = None) -> None:
        """Read and check the file, fit the scaler on train, cut the windows (idempotent)."""
        if self.datasets:
            return
        p, where = self.params, str(self.where)
        frame = self._frame()
        self.columns = self._columns(list(frame.columns))
        self.series = to_series(frame, columns=self.columns.inputs,
                                timestamp_column=p["timestamp_column"], id_column=p["id_column"],
                                fill_missing=p["fill_missing"], freq=p["freq"], where=where)
        context, horizon = p["context_length"], p["prediction_length"]
        bounds = []
        for s in self.series:
            label = where + (f", series {s.name!r}" if p["id_column"] else "")
            if len(s.values) < context + horizon:
                raise DataError(f"{label}: the series has {len(s.values)} rows, "
                                f"fewer than context_length + prediction_length = "
                                f"{context} + {horizon}; use a shorter context or horizon")
            bounds.append(split_bounds(len(s.values), p["split"], context,
                                       tuple(p["split_ratios"]), where=label))
        if p["scale"]:
            self.scaler = StandardScaler.fit([s.values[b["train"][0]:b["train"][1]]
                                              for s, b in zip(self.series, bounds)])
        arrays = [self.scaler.transform(s.values) if self.scaler else s.values for s in self.series]
        offsets = np.cumsum([0] + [len(a) for a in arrays[:-1]]).tolist()
        values = torch.from_numpy(np.concatenate(arrays, axis=0))
        token_of_row = torch.cat([torch.full((len(a),), resolution_token(s.freq), dtype=torch.long)
                                  for a, s in zip(arrays, self.series)])
        n_targets, n_future = len(self.columns.targets), len(self.columns.future_exog)
        datasets = {}
        for split in SPLITS:
            starts = window_starts([b[split] for b in bounds], offsets, context + horizon,
                                   p["stride"] if split == "train" else 1)
            if split == "train" and p["few_shot"] < 1 and len(starts):
                starts = select_fraction(starts, p["few_shot"], p["few_shot_location"], p["seed"])
            if not len(starts):
                raise DataError(f"{where}: the {split} split has no complete window of "
                                f"{context} + {horizon} rows; use a longer series, other "
                                "split_ratios or a shorter context or horizon")
            datasets[split] = WindowDataset(
                values, starts, token_of_row[starts], context_length=context,
                prediction_length=horizon, n_targets=n_targets, n_future_exog=n_future)
            self.keys[split] = forecast_keys(starts, offsets, [s.name for s in self.series], context)
        self.datasets = datasets

    def data_spec(self) -> DataSpec:
        """Columns, fitted scaler, frequency, context, horizon and the heads' channel indices."""
        p = self.params
        freqs = {s.freq for s in self.series}
        task: dict[str, Any] = {**self.columns.to_task(), **self.columns.head_hints(),
                                "fill_missing": p["fill_missing"]}
        if p["freq"] is not None:
            task["freq"] = p["freq"]
        if p["layout"] == "long":
            task.update(layout="long", variable_column=p["variable_column"],
                        value_column=p["value_column"])
        return DataSpec(inputs=tuple(self.columns.inputs),
                        normalization=self.scaler.to_spec() if self.scaler else {},
                        frequency=freqs.pop() if len(freqs) == 1 else None,
                        context_length=p["context_length"], prediction_length=p["prediction_length"],
                        task=task)

    def split_keys(self, split: str) -> list[str]:
        """``"<series>@<row>"`` of each window's first forecast step in ``split``."""
        return self.keys[split]  # type: ignore[index]

    # --------------------------------------------------------------- loaders
    def _loader(self, split: Stage, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        p = self.params
        size = p["batch_size"] if split == "train" else p["eval_batch_size"]
        return DataLoader(self.datasets[split], batch_size=size, shuffle=shuffle,
                          collate_fn=collate_batch, num_workers=p["num_workers"],
                          generator=torch.Generator().manual_seed(p["seed"]) if shuffle else None,
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def write_files(folder: Path) -> dict[str, Any]:
    """The tiny synthetic table as a CSV, with its column roles (the harness trains on it,
    exports, deletes it and predicts again)."""
    path = Path(folder) / "synthetic_hourly.csv"
    with atomic_path(path) as tmp:
        synthetic_frame(rows=300, seed=0).to_csv(tmp, index=False)
    targets, past, future = (list(c) for c in SYNTHETIC_COLUMNS)
    return {"path": str(path), "target_columns": targets, "past_exog_columns": past,
            "future_exog_columns": future}
