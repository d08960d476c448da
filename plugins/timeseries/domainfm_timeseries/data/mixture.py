"""Pretraining corpus: many series at mixed resolutions, with anti-aliased downsampling.

Every channel of every file becomes a univariate series (TTM pretrains channel-independently),
and is also resampled to coarser resolutions by ``torchaudio.functional.resample`` (a windowed
sinc low-pass, so downsampling does not alias daily cycles into slow trends). Each window
carries the resolution token of its (possibly downsampled) series. One map-style dataset holds
all windows, so Lightning's DistributedSampler shards it across DDP ranks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torchaudio.functional as AF
from torch.utils.data import DataLoader

from domainfm_timeseries.data import WindowDataset, collate_batch, window_starts
from domainfm_timeseries.frequency import offset_seconds, token_for_seconds
from domainfm_timeseries.io import DataError, read_frame, to_series


def downsample(values: torch.Tensor, factor: int) -> torch.Tensor:
    """(T, C) -> (T // factor, C) through torchaudio's anti-aliased resampler."""
    if factor == 1:
        return values
    return AF.resample(values.T.contiguous(), orig_freq=factor, new_freq=1).T.contiguous()


class PretrainMixDataModule(pl.LightningDataModule):
    """Univariate windows from several files at native and downsampled resolutions.

    Each series is split by time: the first ``train_fraction`` of its rows trains, the rest
    (with ``context_length`` rows of overlap) validates. Windows start every ``stride`` rows.
    """

    def __init__(self, *, paths: list[str] | None = None, timestamp_column: str = "date",
                 downsample_factors: list[int] = [1, 2, 4],  # noqa: B006
                 context_length: int = 512, prediction_length: int = 96, stride: int = 1,
                 train_fraction: float = 0.8, batch_size: int = 64, eval_batch_size: int = 256,
                 num_workers: int = 0, seed: int = 0, synthetic_rows: int = 4000) -> None:
        super().__init__()
        if any(f < 1 for f in downsample_factors) or not downsample_factors:
            raise DataError(f"downsample_factors={downsample_factors} must be integers >= 1")
        if not 0 < train_fraction < 1:
            raise DataError(f"train_fraction={train_fraction} must be in (0, 1)")
        self.paths, self.timestamp_column = paths, timestamp_column
        self.factors, self.stride, self.fraction = sorted(set(downsample_factors)), stride, train_fraction
        self.context, self.horizon = context_length, prediction_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed, self.synthetic_rows = num_workers, seed, synthetic_rows
        self.datasets: dict[str, WindowDataset] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None

    def _files(self) -> list[Path]:
        if self.paths:
            return [Path(p) for p in self.paths]
        from domainfm_timeseries.synthetic import write_synthetic
        self._tmp = tempfile.TemporaryDirectory(prefix="domainfm-ts-mix-")
        return [write_synthetic(Path(self._tmp.name), rows=self.synthetic_rows, seed=self.seed)]

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        chunks, tokens, bounds = [], [], {"train": [], "val": []}
        window = self.context + self.horizon
        for path in self._files():
            frame = read_frame(path, timestamp_column=self.timestamp_column)
            columns = [c for c in frame.columns if c != self.timestamp_column]
            (series,) = to_series(frame, columns=columns, timestamp_column=self.timestamp_column,
                                  where=path.name)
            seconds = offset_seconds(series.freq)
            for factor in self.factors:
                values = downsample(torch.from_numpy(series.values), factor)
                cut = int(len(values) * self.fraction)
                if cut < window:
                    continue  # too short at this resolution
                token = token_for_seconds(seconds * factor)
                for c in range(values.shape[1]):
                    chunks.append(values[:, c:c + 1])
                    tokens.append(torch.full((len(values),), token, dtype=torch.long))
                    bounds["train"].append((0, cut))
                    bounds["val"].append((cut - self.context, len(values)))
        if not chunks:
            raise DataError(f"no series is long enough for context_length + prediction_length = "
                            f"{window} rows at any of the factors {self.factors}")
        offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]]).tolist()
        values, token_of_row = torch.cat(chunks), torch.cat(tokens)
        for split, stride in (("train", self.stride), ("val", max(self.stride, self.horizon))):
            starts = window_starts(bounds[split], offsets, window, stride)
            self.datasets[split] = WindowDataset(values, starts, token_of_row[starts],
                                                 context_length=self.context,
                                                 prediction_length=self.horizon, n_targets=1)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        return DataLoader(self.datasets[split],
                          batch_size=self.batch_size if shuffle else self.eval_batch_size,
                          shuffle=shuffle, collate_fn=collate_batch, num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed) if shuffle else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
