"""Forecasting windows over concatenated series, and the time splits that cut them.

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

from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from domainfm.errors import DataError

SplitPreset = Literal["ett_hourly", "ett_15min", "ratio"]
FewShotLocation = Literal["last", "first", "uniform"]
Stage = Literal["train", "val", "test"]
SPLITS: tuple[Stage, ...] = ("train", "val", "test")

# ETT protocol (Informer/PatchTST/TTM): 12/4/4 months of hourly rows; x4 for 15-minute data
_ETT_MONTHS = (12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24)


def split_bounds(length: int, preset: SplitPreset, context_length: int,
                 ratios: tuple[float, float] = (0.7, 0.1), where: str = "the series"
                 ) -> dict[Stage, tuple[int, int]]:
    """Row ranges [start, end) per split; val/test start ``context_length`` rows early so their
    first forecast begins right after the previous split (the standard protocol). Forecast
    targets of different splits never share a row."""
    if preset == "ratio":
        train = int(length * ratios[0])
        test = int(length * (1 - ratios[0] - ratios[1]))
        val = length - train - test
        edges = (train, train + val, length)
    else:
        per = 1 if preset == "ett_hourly" else 4
        edges = tuple(int(np.cumsum(_ETT_MONTHS)[i]) * per for i in range(3))
        if edges[-1] > length:
            raise DataError(f"{where}: the {preset} split needs {edges[-1]} rows, the series "
                            f"has {length}")
    return {"train": (0, edges[0]), "val": (max(edges[0] - context_length, 0), edges[1]),
            "test": (max(edges[1] - context_length, 0), edges[2])}


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


def forecast_keys(starts: torch.Tensor, offsets: list[int], names: list[str], context: int
                  ) -> list[str]:
    """``"<series>@<row>"`` of each window's first forecast step: the item id of a window
    (windows of different splits may share context rows, never a forecast row)."""
    edges = np.asarray(offsets)
    series = np.searchsorted(edges, starts.numpy(), side="right") - 1
    return [f"{names[s]}@{int(start) - int(edges[s]) + context}"
            for s, start in zip(series, starts.tolist())]


def select_fraction(starts: torch.Tensor, fraction: float, location: FewShotLocation,
                    seed: int) -> torch.Tensor:
    """Few-shot: keep ``fraction`` of the training windows (latest, earliest or random)."""
    if not 0 < fraction <= 1:
        raise DataError(f"few_shot={fraction} must be in (0, 1]")
    keep = max(1, int(round(len(starts) * fraction)))
    if location == "last":
        return starts[-keep:]
    if location == "first":
        return starts[:keep]
    order = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))
    return starts[order[:keep].sort().values]
