"""``timeseries.mixture``: the pretraining corpus, many series at mixed resolutions, with
anti-aliased downsampling.

Every channel of every file becomes a univariate series (TTM pretrains channel-independently),
and is also resampled to coarser resolutions by ``torchaudio.functional.resample`` (a windowed
sinc low-pass, so downsampling does not alias daily cycles into slow trends). Each window
carries the resolution token of its (possibly downsampled) series. One map-style dataset holds
all windows, so Lightning's DistributedSampler shards it across DDP ranks.

Splits are by time within each series: the first ``train_fraction`` of its rows trains, the
last ``test_fraction`` tests, the rows between validate (val and test windows read
``context_length`` rows of overlap as context, never a forecast row of another split). No
global scaler: TTM scales each window itself, so a model trained here forecasts raw values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torchaudio.functional as AF
from torch.utils.data import DataLoader

from domainfm.errors import DataError
from domainfm.io import atomic_path
from domainfm.records import NonNegativeInt, PositiveInt, Range
from domainfm.spec import DataSpec
from domainfm_timeseries.data.synthetic import synthetic_frame
from domainfm_timeseries.data.windows import (
    SPLITS,
    WindowDataset,
    collate_batch,
    forecast_keys,
    window_starts,
)
from domainfm_timeseries.frequency import offset_seconds, token_for_seconds
from domainfm_timeseries.io import read_frame, to_series

OpenFraction = Annotated[float, Range(gt=0, lt=1)]


def downsample(values: torch.Tensor, factor: int) -> torch.Tensor:
    """(T, C) -> (T // factor, C) through torchaudio's anti-aliased resampler."""
    if factor == 1:
        return values
    return AF.resample(values.T.contiguous(), orig_freq=factor, new_freq=1).T.contiguous()


class PretrainMixDataModule(pl.LightningDataModule):
    """Univariate windows from several files at native and downsampled resolutions.

    Windows start every ``stride`` rows in training, every ``max(stride, prediction_length)``
    rows in validation and test.
    """

    def __init__(self, *, paths: list[str] | None = None, timestamp_column: str = "date",
                 downsample_factors: list[PositiveInt] = [1, 2, 4],  # noqa: B006
                 context_length: PositiveInt = 512, prediction_length: PositiveInt = 96,
                 stride: PositiveInt = 1, train_fraction: OpenFraction = 0.8,
                 test_fraction: OpenFraction = 0.1, batch_size: PositiveInt = 64,
                 eval_batch_size: PositiveInt = 256, num_workers: NonNegativeInt = 0,
                 seed: int = 0, synthetic_rows: PositiveInt = 4000) -> None:
        super().__init__()
        if not downsample_factors:
            raise DataError("data.params.downsample_factors must list at least one factor")
        if train_fraction + test_fraction >= 1:
            raise DataError(f"data.params.train_fraction + test_fraction = "
                            f"{train_fraction + test_fraction:g} must be < 1 (the rest validates)")
        self.paths, self.timestamp_column = paths, timestamp_column
        self.factors, self.stride = sorted(set(downsample_factors)), stride
        self.fractions = (train_fraction, test_fraction)
        self.context, self.horizon = context_length, prediction_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed, self.synthetic_rows = num_workers, seed, synthetic_rows
        self.datasets: dict[str, WindowDataset] = {}
        self.keys: dict[str, list[str]] = {}

    def _frames(self) -> list[tuple[str, pd.DataFrame]]:
        if not self.paths:
            return [("the embedded synthetic series",
                     synthetic_frame(rows=self.synthetic_rows, seed=self.seed))]
        return [(path, read_frame(path, timestamp_column=self.timestamp_column))
                for path in self.paths]

    def setup(self, stage: str | None = None) -> None:
        """Read and check every file, resample, cut the windows (idempotent)."""
        if self.datasets:
            return
        chunks, tokens, names = [], [], []
        bounds: dict[str, list[tuple[int, int]]] = {split: [] for split in SPLITS}
        window = self.context + self.horizon
        frames = self._frames()
        for where, frame in frames:
            columns = [c for c in frame.columns if c != self.timestamp_column]
            if not columns:
                raise DataError(f"{where}: no value columns besides {self.timestamp_column!r}")
            (series,) = to_series(frame, columns=columns, timestamp_column=self.timestamp_column,
                                  where=str(where))
            seconds = offset_seconds(series.freq)
            for factor in self.factors:
                values = downsample(torch.from_numpy(series.values), factor)
                train, test = (int(len(values) * f) for f in self.fractions)
                val_end = len(values) - test
                if train < window or val_end - train < self.horizon or test < self.horizon:
                    continue  # too short at this resolution
                token = token_for_seconds(seconds * factor)
                for c in range(values.shape[1]):
                    chunks.append(values[:, c:c + 1])
                    tokens.append(torch.full((len(values),), token, dtype=torch.long))
                    names.append(f"{Path(where).name}:{columns[c]}/{factor}")
                    bounds["train"].append((0, train))
                    bounds["val"].append((train - self.context, val_end))
                    bounds["test"].append((val_end - self.context, len(values)))
        if not chunks:
            files = ", ".join(str(where) for where, _ in frames)
            raise DataError(f"{files}: no series is long enough for context_length + "
                            f"prediction_length = {window} rows in training and "
                            f"prediction_length rows in validation and test at any of the "
                            f"factors {self.factors}")
        offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]]).tolist()
        values, token_of_row = torch.cat(chunks), torch.cat(tokens)
        for split in SPLITS:
            stride = self.stride if split == "train" else max(self.stride, self.horizon)
            starts = window_starts(bounds[split], offsets, window, stride)
            self.datasets[split] = WindowDataset(values, starts, token_of_row[starts],
                                                 context_length=self.context,
                                                 prediction_length=self.horizon, n_targets=1)
            self.keys[split] = forecast_keys(starts, offsets, names, self.context)

    def data_spec(self) -> DataSpec:
        """Univariate, unscaled windows: a model trained here forecasts every column of a file."""
        return DataSpec(inputs=("value",), context_length=self.context,
                        prediction_length=self.horizon,
                        task={"timestamp_column": self.timestamp_column})

    def split_keys(self, split: str) -> list[str]:
        """``"<file>:<column>/<factor>@<row>"`` of each window's first forecast step."""
        return self.keys[split]

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

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def write_files(folder: Path) -> dict[str, Any]:
    """Two small tables of the synthetic series (seeds 0 and 1) for the pretraining corpus."""
    paths = []
    for seed in (0, 1):
        path = Path(folder) / f"series_{seed}.csv"
        with atomic_path(path) as tmp:
            synthetic_frame(rows=600, seed=seed).to_csv(tmp, index=False)
        paths.append(str(path))
    return {"paths": paths}
