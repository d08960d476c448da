"""What every geospatial dataset and the predictor share: band selection, per-band
normalisation and nodata masking (:class:`Preprocess`), dates and coordinates, the three-way
split and the loaders.

A :class:`Preprocess` is built from the data parameters in training and from the model's data
specification (:meth:`Preprocess.from_spec`) in prediction, so new files are read exactly as
the training files were, with the training data gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torchgeo.datasets.utils import stack_samples

from domainfm.errors import DataError
from domainfm.spec import DataSpec

from domainfm_geospatial.bands import HLS_BANDS, normalisation, select_bands


@dataclass
class Preprocess:
    """Band selection + per-band normalisation + nodata masking, shared by data and predict.

    ``nodata`` is the value that marks missing pixels in files that declare none themselves.
    """

    indices: list[int]
    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    frames: int
    file_bands: list[str]
    nodata: float | None = None

    @classmethod
    def create(cls, *, file_bands: Sequence[str] | None, bands: Sequence[str | int] | None,
               mean: Sequence[float] | None, std: Sequence[float] | None, frames: int,
               nodata: float | None = None) -> Preprocess:
        file_bands = list(file_bands or HLS_BANDS)
        if len(set(file_bands)) != len(file_bands):
            raise DataError(f"file_bands {file_bands} names a band twice")
        indices, names = select_bands(bands if bands is not None else list(file_bands), file_bands)
        m, s = normalisation(names, mean, std)
        return cls(indices, names, np.asarray(m, np.float32), np.asarray(s, np.float32), frames,
                   file_bands, nodata)

    @classmethod
    def from_spec(cls, spec: DataSpec) -> Preprocess:
        """The training data's preprocessing, from a model's data specification."""
        task, stats = spec.task, spec.normalization
        missing = [k for k in ("file_bands", "band_indices", "num_frames") if k not in task]
        if missing or "mean" not in stats or not spec.inputs:
            raise DataError(f"this model's data specification lacks {missing or 'band statistics'}: "
                            "it was not trained on geospatial data")
        return cls(list(task["band_indices"]), list(spec.inputs),
                   np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32),
                   int(task["num_frames"]), list(task["file_bands"]), task.get("nodata"))

    def spec(self, *, num_classes: int | None, ignore_index: int, **task: Any) -> DataSpec:
        """The data specification of data read with this preprocessing."""
        return DataSpec(inputs=tuple(self.names), num_classes=num_classes,
                        normalization={"mean": self.mean.tolist(), "std": self.std.tolist()},
                        task={"file_bands": list(self.file_bands), "band_indices": list(self.indices),
                              "num_frames": self.frames, "ignore_index": ignore_index,
                              "nodata": self.nodata, **task})

    def file_indices(self) -> list[int]:
        """Band indices for a file holding ``frames`` time-major stacks of ``file_bands``."""
        per = len(self.file_bands)
        return [t * per + i for t in range(self.frames) for i in self.indices]

    def expected_count(self) -> int:
        return len(self.file_bands) * self.frames

    def what_count(self) -> str:
        return "file_bands x num_frames" if self.frames > 1 else "file_bands"

    def mask_nodata(self, raw: np.ndarray, nodata: float | None) -> np.ndarray:
        """``raw`` as float32 with the file's nodata value (else this one's) set to NaN."""
        raw = raw.astype(np.float32)
        value = nodata if nodata is not None else self.nodata
        if value is not None and not np.isnan(value):
            raw[raw == value] = np.nan
        return raw

    def __call__(self, raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T*C, H, W)`` with NaN nodata -> normalised ``(C, T, H, W)`` and valid ``(H, W)``."""
        x = raw.reshape(self.frames, len(self.indices), *raw.shape[-2:])
        valid = np.isfinite(x).all(axis=(0, 1))
        x = (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        x = np.nan_to_num(x, nan=0.0)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2, 3))), torch.from_numpy(valid)


def day_coords(day: pd.Timestamp) -> list[float]:
    return [float(day.year), float(day.dayofyear)]


def parse_dates(dates: Sequence[str]) -> torch.Tensor:
    """``["2023-04-15", ...]`` or ``["20230415", ...]`` -> ``(T, 2)`` (year, day-of-year)."""
    out = []
    for d in dates:
        try:
            out.append(day_coords(pd.Timestamp(str(d))))
        except ValueError:
            raise DataError(f"date {d!r} is not a date (expected YYYY-MM-DD)") from None
    return torch.tensor(out, dtype=torch.float32)


def lat_lon(crs: Any, x: float, y: float) -> torch.Tensor:
    """(lat, lon) of a point given in ``crs``; zeros for files without a CRS."""
    if crs is None:
        return torch.zeros(2)
    from rasterio.warp import transform as warp_transform

    lon, lat = warp_transform(crs, "EPSG:4326", [x], [y])
    return torch.tensor([lat[0], lon[0]], dtype=torch.float32)


SPLITS = ("train", "val", "test")


def split(items: Sequence[Any], val_fraction: float, test_fraction: float, seed: int,
          what: str) -> dict[str, list[Any]]:
    """A seeded train/val/test split; each split gets at least one item, so the test split is
    never the validation split. ``what`` names the items and where they come from."""
    n = len(items)
    if n < 3:
        raise DataError(f"{what}: found {n}, too few for disjoint train, validation and test "
                        "splits (at least 3)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(val_fraction * n))
    n_test = max(1, round(test_fraction * n))
    if n_val + n_test > n - 1:
        raise DataError(f"{what}: val_fraction {val_fraction} and test_fraction {test_fraction} "
                        f"leave no training item of {n}")
    chosen = {"val": order[:n_val], "test": order[n_val:n_val + n_test],
              "train": order[n_val + n_test:]}
    return {name: [items[i] for i in sorted(index)] for name, index in chosen.items()}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return stack_samples(samples)


class SplitDataModule(pl.LightningDataModule):
    """Loaders over ``self.sets`` (train, val and test datasets) and their item keys."""

    batch_size: int
    num_workers: int
    sets: dict[str, Dataset]
    keys: dict[str, list[Any]]

    def split_keys(self, split: str) -> list[Any]:
        return list(self.keys[split])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=collate,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # the split datasets by name, for tests and benchmarks
    @property
    def train_set(self) -> Dataset:
        return self.sets["train"]

    @property
    def val_set(self) -> Dataset:
        return self.sets["val"]

    @property
    def test_set(self) -> Dataset:
        return self.sets["test"]
