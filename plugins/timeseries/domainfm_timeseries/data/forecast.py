"""Forecasting windows over tabular series, split by time, scaled on the training split.

A window is ``context_length`` past steps and ``prediction_length`` future steps of one series.
Windows are gathered in one tensor indexing operation per batch (``__getitems__``), so a batch
costs no per-sample Python work. Datasets are map-style: under DDP Lightning's
DistributedSampler gives each rank a disjoint, seed-reproducible share (padding the last few
indices, as DistributedSampler documents, when the epoch does not divide evenly).

Batch keys: ``past_values`` (B, L, C) with channels ordered targets, past-only exogenous,
known-future exogenous; ``target`` (B, H, n_targets); ``future_exog`` (B, H, n_future) when
known-future exogenous columns exist; ``freq_token`` (B,).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from domainfm.errors import DomainfmError
from domainfm_timeseries.frequency import offset_seconds, resolution_token
from domainfm_timeseries.io import DataError, Fill, Layout, Series, read_frame, to_series

SplitPreset = Literal["ett_hourly", "ett_15min", "ratio"]
FewShotLocation = Literal["last", "first", "uniform"]
Stage = Literal["train", "val", "test"]

# ETT protocol (Informer/PatchTST/TTM): 12/4/4 months of hourly rows; x4 for 15-minute data
_ETT_MONTHS = (12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24)


def split_bounds(length: int, preset: SplitPreset, context_length: int,
                 ratios: tuple[float, float] = (0.7, 0.1)) -> dict[Stage, tuple[int, int]]:
    """Row ranges [start, end) per split; val/test start ``context_length`` rows early so their
    first forecast begins right after the previous split (the standard protocol)."""
    if preset == "ratio":
        train = int(length * ratios[0])
        test = int(length * (1 - ratios[0] - ratios[1]))
        val = length - train - test
        edges = (train, train + val, length)
    else:
        per = 1 if preset == "ett_hourly" else 4
        edges = tuple(int(np.cumsum(_ETT_MONTHS)[i]) * per for i in range(3))
        if edges[-1] > length:
            raise DataError(f"the {preset} split needs {edges[-1]} rows, the series has {length}")
    return {"train": (0, edges[0]), "val": (edges[0] - context_length, edges[1]),
            "test": (edges[1] - context_length, edges[2])}


@dataclass
class StandardScaler:
    """Per-channel mean and (population) std fitted on training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, arrays: list[np.ndarray]) -> "StandardScaler":
        data = np.concatenate(arrays, axis=0).astype(np.float64)
        std = data.std(axis=0)
        return cls(data.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray, channels: slice | list[int] = slice(None)) -> np.ndarray:
        return values * self.std[channels] + self.mean[channels]


class WindowDataset(Dataset):
    """All (context, horizon) windows of a set of series, gathered by tensor indexing.

    ``values`` (T, C) concatenates the series; ``starts`` are window starts in it; each window
    reads rows ``start .. start + context + horizon``; ``tokens`` holds each window's
    resolution token.
    """

    def __init__(self, values: torch.Tensor, starts: torch.Tensor, tokens: torch.Tensor, *,
                 context_length: int, prediction_length: int, n_targets: int,
                 n_future_exog: int = 0) -> None:
        self.values, self.starts, self.tokens = values, starts, tokens
        self.context, self.horizon = context_length, prediction_length
        self.n_targets, self.n_future = n_targets, n_future_exog
        self._offsets = torch.arange(context_length + prediction_length)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        windows = self.values[self.starts[idx, None] + self._offsets]  # (B, L + H, C)
        past, future = windows[:, :self.context], windows[:, self.context:]
        batch = {"past_values": past, "target": future[..., :self.n_targets],
                 "freq_token": self.tokens[idx]}
        if self.n_future:
            batch["future_exog"] = future[..., -self.n_future:]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


def collate_batch(batch: Any) -> Any:
    """``__getitems__`` already returns a stacked batch; stack single items otherwise."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.stack([item[k] for item in batch]) for k in batch[0]}


def window_starts(bounds: list[tuple[int, int]], offsets: list[int], window: int, stride: int
                  ) -> torch.Tensor:
    """Starts of every window lying fully inside each (start, end) of each series."""
    parts = [torch.arange(offset + start, offset + end - window + 1, stride)
             for (start, end), offset in zip(bounds, offsets) if end - start >= window]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def select_fraction(starts: torch.Tensor, fraction: float, location: FewShotLocation,
                    seed: int) -> torch.Tensor:
    """Few-shot: keep ``fraction`` of the training windows (latest, earliest or random)."""
    if not 0 < fraction <= 1:
        raise DomainfmError(f"few_shot={fraction} must be in (0, 1]")
    keep = max(1, int(round(len(starts) * fraction)))
    if location == "last":
        return starts[-keep:]
    if location == "first":
        return starts[:keep]
    order = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))
    return starts[order[:keep].sort().values]


def resolve_columns(params: dict[str, Any], frame_columns: list[str]
                    ) -> tuple[list[str], list[str], list[str]]:
    """(targets, past-only exogenous, known-future exogenous) column names for data params.

    Unset targets mean every column that is not the timestamp, the id or an exogenous column;
    the embedded synthetic dataset (no ``path``) has its own defaults.
    """
    past = list(params.get("past_exog_columns") or [])
    future = list(params.get("future_exog_columns") or [])
    targets = params.get("target_columns")
    if params.get("path") is None and targets is None:
        from domainfm_timeseries.synthetic import SYNTHETIC_COLUMNS
        targets, past, future = (list(c) for c in SYNTHETIC_COLUMNS)
    if targets is None:
        skip = {params.get("timestamp_column", "date"), params.get("id_column"), *past, *future}
        targets = [c for c in frame_columns if c not in skip]
    if not targets:
        raise DataError("no target columns: set target_columns")
    return list(targets), past, future


class ForecastDataModule(pl.LightningDataModule):
    """Windows of one CSV/Parquet file (or the embedded synthetic series) for forecasting."""

    def __init__(self, *, path: str | None = None, layout: Layout = "wide",
                 timestamp_column: str = "date", target_columns: list[str] | None = None,
                 past_exog_columns: list[str] | None = None,
                 future_exog_columns: list[str] | None = None, id_column: str | None = None,
                 variable_column: str = "variable", value_column: str = "value",
                 freq: str | None = None, fill_missing: Fill = "error",
                 split: SplitPreset = "ratio", split_ratios: list[float] = [0.7, 0.1],  # noqa: B006
                 context_length: int = 512, prediction_length: int = 96, stride: int = 1,
                 scale: bool = True, few_shot: float = 1.0,
                 few_shot_location: FewShotLocation = "last", batch_size: int = 64,
                 eval_batch_size: int = 256, num_workers: int = 0, seed: int = 0,
                 synthetic_rows: int = 2000) -> None:
        super().__init__()
        self.params = dict(locals())
        self.params.pop("self")
        self.params.pop("__class__", None)
        if freq is not None:
            offset_seconds(freq)  # fail early on an unknown alias
        self.datasets: dict[Stage, WindowDataset] = {}
        self.scaler: StandardScaler | None = None
        self.series: list[Series] = []
        self.columns: list[str] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    # --------------------------------------------------------------- reading
    def _source(self) -> Path:
        p = self.params
        if p["path"] is not None:
            return Path(p["path"])
        from domainfm_timeseries.synthetic import write_synthetic
        self._tmp = tempfile.TemporaryDirectory(prefix="domainfm-ts-")
        return write_synthetic(Path(self._tmp.name), rows=p["synthetic_rows"], seed=p["seed"])

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        p = self.params
        source = self._source()
        frame = read_frame(source, layout=p["layout"], timestamp_column=p["timestamp_column"],
                           id_column=p["id_column"], variable_column=p["variable_column"],
                           value_column=p["value_column"])
        targets, past, future = resolve_columns(p, list(frame.columns))
        self.columns, self.n_targets, self.n_future = targets + past + future, len(targets), len(future)
        self.target_columns, self.future_exog_columns = targets, future
        self.series = to_series(frame, columns=self.columns, timestamp_column=p["timestamp_column"],
                                id_column=p["id_column"], fill_missing=p["fill_missing"],
                                freq=p["freq"], where=str(source.name))
        context, horizon = p["context_length"], p["prediction_length"]
        bounds = []
        for s in self.series:
            if len(s.values) < context + horizon:
                label = source.name + (f", series {s.name!r}" if p["id_column"] else "")
                raise DataError(f"{label}: the series has {len(s.values)} rows, "
                                f"fewer than context_length + prediction_length = "
                                f"{context} + {horizon}; use a shorter context or horizon")
            bounds.append(split_bounds(len(s.values), p["split"], context, tuple(p["split_ratios"])))
        if p["scale"]:
            self.scaler = StandardScaler.fit([s.values[b["train"][0]:b["train"][1]]
                                              for s, b in zip(self.series, bounds)])
        arrays = [self.scaler.transform(s.values) if self.scaler else s.values for s in self.series]
        offsets = np.cumsum([0] + [len(a) for a in arrays[:-1]]).tolist()
        values = torch.from_numpy(np.concatenate(arrays, axis=0))
        token_of_row = torch.cat([torch.full((len(a),), resolution_token(s.freq), dtype=torch.long)
                                  for a, s in zip(arrays, self.series)])
        window = context + horizon
        for split in ("train", "val", "test"):
            starts = window_starts([b[split] for b in bounds], offsets, window,
                                   p["stride"] if split == "train" else 1)
            if split == "train" and p["few_shot"] < 1:
                starts = select_fraction(starts, p["few_shot"], p["few_shot_location"], p["seed"])
            self.datasets[split] = WindowDataset(
                values, starts, token_of_row[starts], context_length=context,
                prediction_length=horizon, n_targets=self.n_targets, n_future_exog=self.n_future)
        if len(self.datasets["train"]) == 0:
            raise DataError(f"{source.name}: the training split has no complete window of "
                            f"{context} + {horizon} rows")

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

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    @property
    def head_params(self) -> dict[str, Any]:
        """Channel indices the matching head needs (targets first, then exogenous)."""
        if not self.n_future and len(self.columns) == self.n_targets:
            return {}
        c = len(self.columns)
        return {"prediction_channels": list(range(self.n_targets)),
                "exogenous_channels": list(range(c - self.n_future, c)) if self.n_future else None}

