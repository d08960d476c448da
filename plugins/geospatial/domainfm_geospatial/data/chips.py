"""Pre-chipped image/label GeoTIFF pairs (Sen1Floods11, HLS burn scars layouts).

A chip stores ``num_frames`` time-major stacks of ``file_bands``; its label is found by
replacing ``label_from`` with ``label_to`` in its path. Chips are split into train, validation
and test, each chip in exactly one split. With ``tile_size`` every chip is first cut into
non-overlapping square tiles and the tiles are split instead (a spatial block split: no pixel
is in two splits), so a folder of one or two large chips still gives three disjoint splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchgeo.datasets import NonGeoDataset

from domainfm.errors import DataError
from domainfm.records import Fraction, NonNegativeInt, PositiveInt

from domainfm_geospatial import io as gio
from domainfm_geospatial import synthetic
from domainfm_geospatial.data.labels import LabelCheck
from domainfm_geospatial.data.preprocess import (
    Preprocess,
    SplitDataModule,
    lat_lon,
    parse_dates,
    split,
)

Pair = tuple[Path, Path | None]
Item = tuple[Path, Path | None, tuple[int, int] | None]  # image, label, tile origin (row, col)


class ChipDataset(NonGeoDataset):
    """Image/label pairs read on demand, preprocessed like every geospatial input."""

    def __init__(self, items: list[Item], prep: Preprocess, dates: torch.Tensor | None,
                 ignore_index: int, label_nodata: int | None, tile_size: int | None = None) -> None:
        self.items, self.prep, self.dates = items, prep, dates
        self.ignore_index, self.label_nodata, self.tile_size = ignore_index, label_nodata, tile_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image_path, label_path, origin = self.items[i]
        raw, info = gio.read_bands(image_path, self.prep.file_indices())
        window = _window(origin, self.tile_size)
        image, valid = self.prep(self.prep.mask_nodata(raw[window], info.nodata))
        if not valid.any():  # found in setup unless check_pixels is off
            raise gio.nodata_only(image_path, info.nodata if info.nodata is not None else self.prep.nodata)
        row, col = origin or (0, 0)
        height, width = valid.shape
        cx, cy = info.transform @ (col + width / 2, row + height / 2)
        sample: dict[str, Any] = {"image": image, "location_coords": lat_lon(info.crs, cx, cy)}
        if self.dates is not None:
            sample["temporal_coords"] = self.dates
        if label_path is not None:
            label, label_info = gio.read_labels(label_path)
            label = label[window]
            nodata = label_info.nodata if self.label_nodata is None else self.label_nodata
            target = torch.from_numpy(np.nan_to_num(label, nan=self.ignore_index).astype(np.int64))
            if nodata is not None and np.isfinite(nodata):
                target[torch.from_numpy(label == nodata)] = self.ignore_index
            target[~valid] = self.ignore_index
            sample["target"] = target
        return sample


def _window(origin: tuple[int, int] | None, size: int | None) -> Any:
    """The array index of a tile (``...`` for a whole chip)."""
    if origin is None or size is None:
        return ...
    row, col = origin
    return (..., slice(row, row + size), slice(col, col + size))


class ChipDataModule(SplitDataModule):
    """Image chips ``<root>/<image_glob>``; labels found by replacing ``label_from`` -> ``label_to``."""

    def __init__(self, *, root: str, image_glob: str, label_from: str, label_to: str,
                 labels: bool, prep: Preprocess, dates: list[str] | None, val_fraction: float,
                 test_fraction: float, num_classes: int | None, batch_size: int,
                 num_workers: int, seed: int, ignore_index: int, label_nodata: int | None,
                 check_pixels: bool = True, tile_size: int | None = None) -> None:
        super().__init__()
        self.root, self.image_glob = Path(root), image_glob
        self.label_from, self.label_to, self.with_labels = label_from, label_to, labels
        self.prep = prep
        self.dates = parse_dates(dates) if dates else None
        if self.dates is not None and len(self.dates) != prep.frames:
            raise DataError(f"`dates` has {len(self.dates)} entries but num_frames="
                            f"{prep.frames}: give one date per frame")
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.num_classes = num_classes
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.ignore_index, self.label_nodata = ignore_index, label_nodata
        self.check_pixels, self.tile_size = check_pixels, tile_size
        self.sets: dict[str, ChipDataset] = {}

    def pairs(self) -> list[Pair]:
        """Every image with its label, checked for band count, size and CRS, and (with
        ``check_pixels``) for readable pixels, some valid ones and labels in range."""
        if not self.root.is_dir():
            raise DataError(f"chip folder {self.root} does not exist")
        images = sorted(self.root.glob(self.image_glob))
        if not images:
            raise DataError(f"no chips match {self.image_glob!r} in {self.root}")
        labels = LabelCheck(self.num_classes, self.ignore_index, nodata=self.label_nodata,
                            default_nodata=None)
        pairs: list[Pair] = []
        for image in images:
            info = gio.raster_info(image)
            gio.check_band_count(info, self.prep.expected_count(), self.prep.what_count())
            if self.prep.nodata is None and info.nodata is not None:
                self.prep.nodata = float(info.nodata)
            if self.check_pixels:
                gio.scan_pixels(image, self.prep.file_indices(), self.prep.nodata)
            label = None
            if self.with_labels:
                rel = str(image.relative_to(self.root))
                if self.label_from not in rel:
                    raise DataError(f"{image}: name lacks {self.label_from!r}, so its label "
                                    f"cannot be found (label_from/label_to)")
                label = self.root / rel.replace(self.label_from, self.label_to)
                if not label.is_file():
                    raise DataError(f"{label}: no such file, the label of {image.name} (its name "
                                    f"with {self.label_from!r} replaced by {self.label_to!r})")
                label_info = gio.raster_info(label)
                gio.check_same_grid(info, label_info)
                if self.check_pixels:
                    labels.add(*gio.read_labels(label))
                else:
                    labels.add_nodata(label_info)
            pairs.append((image, label))
        if self.with_labels:
            self.num_classes = labels.num_classes()
        return pairs

    def tiles(self, pairs: list[Pair]) -> list[Item]:
        """Every chip cut into ``tile_size`` squares from its top-left corner (a remainder
        narrower than a tile at the right or bottom edge is left out); with ``check_pixels``,
        tiles without a single valid pixel are left out too."""
        size, items = self.tile_size, []
        for image, label in pairs:
            info = gio.raster_info(image)
            if size > min(info.height, info.width):
                raise DataError(f"{image}: is {info.height}x{info.width} pixels, smaller than "
                                f"tile_size={size}")
            valid = None
            if self.check_pixels:
                raw, _ = gio.read_bands(image, self.prep.file_indices())
                valid = self.prep(self.prep.mask_nodata(raw, info.nodata))[1]
            for row in range(0, info.height - size + 1, size):
                for col in range(0, info.width - size + 1, size):
                    if valid is None or valid[row:row + size, col:col + size].any():
                        items.append((image, label, (row, col)))
        return items

    def setup(self, stage: str | None = None) -> None:
        """Read and check every chip (and cut it into tiles), then split them."""
        if self.sets:
            return
        pairs = self.pairs()
        what = f"chips matching {self.image_glob!r} in {self.root}"
        if self.tile_size is None:
            items: list[Item] = [(image, label, None) for image, label in pairs]
        else:
            items, what = self.tiles(pairs), f"tiles of {self.tile_size} px of the {what}"
        parts = split(items, self.val_fraction, self.test_fraction, self.seed, what)
        self.keys = {name: [_key(self.root, item) for item in part] for name, part in parts.items()}
        self.sets = {name: ChipDataset(part, self.prep, self.dates, self.ignore_index,
                                       self.label_nodata, self.tile_size)
                     for name, part in parts.items()}

    def data_spec(self) -> Any:
        source = (f"the labels of {self.image_glob!r} in {self.root} ({self.label_from!r} -> "
                  f"{self.label_to!r})") if self.with_labels else None
        return self.prep.spec(num_classes=self.num_classes if self.with_labels else None,
                              ignore_index=self.ignore_index, label_source=source)


def _key(root: Path, item: Item) -> str:
    """A chip's path in the folder, and its tile's origin (row, col) when tiled."""
    image, _, origin = item
    name = str(image.relative_to(root))
    return name if origin is None else f"{name}@{origin[0]},{origin[1]}"


def build_chips(*, root: str | None = None, generate: bool = False,
                chips: PositiveInt = 8, size: PositiveInt = 32, image_glob: str = "*_input.tif",
                label_from: str = "_input", label_to: str = "_label", labels: bool = True,
                file_bands: list[str] | None = None, bands: list[str | int] | None = None,
                mean: list[float] | None = None, std: list[float] | None = None,
                num_frames: PositiveInt = 1, dates: list[str] | None = None,
                val_fraction: Fraction = 0.25, test_fraction: Fraction = 0.25,
                num_classes: PositiveInt | None = None, batch_size: PositiveInt = 8,
                num_workers: NonNegativeInt = 0, seed: int = 0, ignore_index: int = -1,
                label_nodata: int | None = None, check_pixels: bool = True,
                tile_size: PositiveInt | None = None) -> ChipDataModule:
    """Chips whose ``file_bands`` (names of the bands in each file, per frame, time-major) are
    selected by ``bands`` (names or 0-based indices); ``dates`` (one per frame) feed temporal
    encodings. Sen1Floods11: ``image_glob="S1Hand/*.tif", label_from="S1Hand",
    label_to="LabelHand"``; HLS burn scars: ``image_glob="*_merged.tif", label_from="_merged",
    label_to=".mask"``. Label values are ``0..num_classes-1`` (default: found in the labels);
    ``label_nodata`` (default: each file's nodata tag) and ``ignore_index`` mark unlabelled
    pixels. At least three chips are needed (train, validation, test), or with ``tile_size``
    three tiles: every chip is cut into non-overlapping ``tile_size`` squares that are split
    instead (a spatial block split of one large chip; adjacent tiles of a scene are alike, so
    such scores are within-scene, not a new region's). ``check_pixels`` reads
    every chip in setup (truncated, nodata-only files, labels out of range). ``generate=True``
    first writes ``chips`` embedded water chips of ``size`` pixels into ``root`` (a temporary
    folder when ``root`` is None)."""
    if generate:
        root = synthetic.generated(root, "chips", chips=chips, size=size, frames=num_frames,
                                   seed=seed)
    if root is None:
        raise DataError("geospatial chips need `root` (a folder of image/label GeoTIFFs)")
    prep = Preprocess.create(file_bands=file_bands, bands=bands, mean=mean, std=std,
                             frames=num_frames)
    return ChipDataModule(root=root, image_glob=image_glob, label_from=label_from,
                          label_to=label_to, labels=labels, prep=prep, dates=dates,
                          val_fraction=val_fraction, test_fraction=test_fraction,
                          num_classes=num_classes, batch_size=batch_size,
                          num_workers=num_workers, seed=seed, ignore_index=ignore_index,
                          label_nodata=label_nodata, check_pixels=check_pixels,
                          tile_size=tile_size)


def write_files(folder: Path) -> dict[str, Any]:
    """A tiny copy of the chip layout (6 image/label pairs): the harness trains on it."""
    synthetic.make_chips(folder, chips=6, size=32, seed=3)
    return {"root": str(folder), "generate": False}
