"""The embedded water data: generated HLS-like dated scenes (see
:mod:`domainfm_geospatial.synthetic`) served as a water segmentation (``mask``), a whole-window
label (``scene``) or a water-index regression (``ndwi``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domainfm.records import Fraction, NonNegativeInt, PositiveInt

from domainfm_geospatial import synthetic
from domainfm_geospatial.data.scenes import Sampler, SceneDataModule, Target, build_scenes


def build_water(*, root: str | None = None, places: PositiveInt = 8, size: PositiveInt = 64,
                chip_size: PositiveInt = 32, stride: PositiveInt | None = None,
                num_frames: PositiveInt = 3, target: Target = "mask", sampler: Sampler = "grid",
                samples_per_epoch: PositiveInt = 64, batch_size: PositiveInt = 8,
                num_workers: NonNegativeInt = 0, seed: int = 0, val_fraction: Fraction = 0.25,
                test_fraction: Fraction = 0.25,
                max_train_samples: PositiveInt | None = None) -> SceneDataModule:
    """The embedded water dataset, generated from ``seed`` into ``root`` (default: a temp folder).

    ``target``: ``mask`` (water segmentation), ``scene`` (is the window mostly water?) or
    ``ndwi`` (per-pixel water index regression). ``max_train_samples`` keeps a seeded subset
    of the training windows (few-label experiments). Places are split into train, validation
    and test; water is class 1 of 2.
    """
    return build_scenes(root=root, generate=True, places=places, size=size, chip_size=chip_size,
                        stride=stride, num_frames=num_frames, target=target, sampler=sampler,
                        samples_per_epoch=samples_per_epoch, batch_size=batch_size,
                        num_workers=num_workers, seed=seed, val_fraction=val_fraction,
                        test_fraction=test_fraction, num_classes=2,
                        max_train_samples=max_train_samples, cache=True)


def write_files(folder: Path) -> dict[str, Any]:
    """The tiny water data as files (the harness trains on them, then deletes them)."""
    synthetic.make_scenes(folder, places=4, size=32, seed=3)
    return {"root": str(folder)}
