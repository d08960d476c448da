"""Dated scenes: ``<place>_<YYYYMMDD>.tif`` multi-band stacks (one file per date) with
``<place>_mask.tif`` labels, indexed by torchgeo and sampled with its geo samplers.

Every sample is ``{"image": (C, T, H, W) normalised float, "target": (H, W) long with
ignore_index where unlabelled or nodata, "temporal_coords": (T, 2) (year, day-of-year),
"location_coords": (2,) (lat, lon)}``. Nodata pixels are set to 0 after normalisation (the band
mean) and excluded from the loss. Places are split into train, validation and test, so no test
window shares a place with a window that selected the checkpoint.

Sharding: the windows are drawn once per setup from torchgeo's grid sampler or its random
sampler with a seeded generator, and served by a map-style dataset, so Lightning's
DistributedSampler gives every DDP rank a disjoint, seed-reproducible share (it pads the last
ranks with repeated samples when the epoch does not divide).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from rasterio.errors import RasterioError
from torch.utils.data import Dataset
from torchgeo.datasets import RasterDataset
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from domainfm.errors import DataError
from domainfm.records import Fraction, NonNegativeInt, PositiveInt

from domainfm_geospatial import io as gio
from domainfm_geospatial import synthetic
from domainfm_geospatial.data.labels import LabelCheck
from domainfm_geospatial.data.preprocess import (
    SPLITS,
    Preprocess,
    SplitDataModule,
    day_coords,
    lat_lon,
    split,
)

DATED = re.compile(r"^(?P<place>.+)_(?P<date>\d{8})\.tif$")
MASK = re.compile(r"^(?P<place>.+)_mask\.tif$")
SCENE_WATER_SHARE = 0.2
Target = Literal["mask", "scene", "ndwi"]
Sampler = Literal["grid", "random"]


class DatedStacks(RasterDataset):
    """torchgeo index of ``<place>_<YYYYMMDD>.tif`` multi-band stacks (one file per date)."""

    filename_glob = "*.tif"
    filename_regex = r"^(?P<place>.+)_(?P<date>\d{8})\."
    date_format = "%Y%m%d"

    def __init__(self, files: list[Path], file_bands: list[str], band_names: list[str]) -> None:
        self.all_bands = tuple(file_bands)
        super().__init__(paths=[str(f) for f in files], bands=band_names)


class Labels(RasterDataset):
    """torchgeo index of ``<place>_mask.tif`` label rasters."""

    filename_glob = "*_mask.tif"
    filename_regex = r"^(?P<place>.+)_mask\."
    is_image = False

    def __init__(self, files: list[Path]) -> None:
        super().__init__(paths=[str(f) for f in files])


class SceneWindows(Dataset):
    """Map-style dataset over fixed geo windows of dated scenes: one sample = all dates."""

    def __init__(self, images: DatedStacks, labels: Labels | None, windows: list[tuple[slice, slice]],
                 prep: Preprocess, ignore_index: int, label_nodata: int, target: Target = "mask",
                 cache: bool = False) -> None:
        self.images, self.labels, self.windows = images, labels, windows
        self.prep, self.ignore_index, self.label_nodata = prep, ignore_index, label_nodata
        self.target = target
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.windows)

    def dates_at(self, x: slice, y: slice) -> list[pd.Interval]:
        index = self.images.index.cx[x.start:x.stop, y.start:y.stop]
        return sorted(set(index.index), key=lambda iv: iv.left)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.cache is not None:
            if i not in self.cache:
                self.cache[i] = self.read(i)
            return dict(self.cache[i])
        return self.read(i)

    def read(self, i: int) -> dict[str, Any]:
        x, y = self.windows[i]
        files = sorted(self.images.index.cx[x.start:x.stop, y.start:y.stop].filepath)
        try:
            return self._read(x, y, files)
        except RasterioError as exc:  # found in setup unless check_pixels is off
            raise DataError(f"{', '.join(Path(f).name for f in files)}: not readable GeoTIFFs "
                            f"({str(exc).splitlines()[0]})") from None

    def _read(self, x: slice, y: slice, files: list[str]) -> dict[str, Any]:
        dates = self.dates_at(x, y)
        frames = self.prep.frames
        if len(dates) < frames:
            raise DataError(
                f"window x={x.start:.0f}..{x.stop:.0f}, y={y.start:.0f}..{y.stop:.0f} has "
                f"{len(dates)} dates ({', '.join(Path(f).name for f in files)}) but "
                f"num_frames={frames}: every place needs at least that many dated files")
        dates = dates[-frames:]  # the latest frames, in time order
        stack = [self.images[x, y, slice(d.left, d.right)]["image"].numpy() for d in dates]
        raw = self.prep.mask_nodata(np.concatenate(stack), None)
        image, valid = self.prep(raw)
        sample: dict[str, Any] = {
            "image": image,
            "temporal_coords": torch.tensor([day_coords(d.left) for d in dates]),
            "location_coords": lat_lon(self.images.crs, (x.start + x.stop) / 2, (y.start + y.stop) / 2),
        }
        if self.target == "ndwi":
            sample["target"] = ndwi(raw[-len(self.prep.names):], self.prep.names)
        elif self.labels is not None:
            target = self.labels[x, y]["mask"].long()
            target[(target == self.label_nodata) | ~valid] = self.ignore_index
            if self.target == "scene":  # does water cover more than a fifth of the window?
                labelled = target != self.ignore_index
                share = (target == 1)[labelled].float().mean() if labelled.any() else 0.0
                target = torch.tensor(int(share > SCENE_WATER_SHARE))
            sample["target"] = target
        return sample


def ndwi(frame: np.ndarray, names: list[str]) -> torch.Tensor:
    """McFeeters' water index (GREEN - NIR) / (GREEN + NIR) of one frame; NaN where nodata."""
    green, nir = frame[names.index("GREEN")], frame[names.index("NIR_NARROW")]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (green - nir) / (green + nir)
    return torch.from_numpy(np.where(np.isfinite(value), value, np.nan).astype(np.float32))


class SceneDataModule(SplitDataModule):
    """Windows of dated scene stacks, sampled with torchgeo's grid or seeded random sampler."""

    def __init__(self, *, root: str, prep: Preprocess, chip_size: int, stride: int | None,
                 sampler: Sampler, samples_per_epoch: int, val_fraction: float,
                 test_fraction: float, labels: bool, num_classes: int | None, batch_size: int,
                 num_workers: int, seed: int, ignore_index: int, target: Target = "mask",
                 max_train_samples: int | None = None, cache: bool = False,
                 check_pixels: bool = True) -> None:
        super().__init__()
        if target == "ndwi":
            missing = [b for b in ("GREEN", "NIR_NARROW") if b not in prep.names]
            if missing:
                raise DataError(f"target 'ndwi' needs bands GREEN and NIR_NARROW; {missing} not "
                                f"in the selected bands {prep.names}")
        self.root, self.prep, self.target = Path(root), prep, target
        self.chip_size, self.stride = chip_size, stride or chip_size
        self.sampler, self.samples_per_epoch = sampler, samples_per_epoch
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.with_labels = labels and target != "ndwi"
        self.num_classes = 2 if target == "scene" else num_classes
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.ignore_index, self.max_train_samples = ignore_index, max_train_samples
        self.cache, self.check_pixels = cache, check_pixels
        self.sets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ reading and checking

    def _files(self) -> tuple[dict[str, list[Path]], dict[str, Path]]:
        """Dated images by place and masks by place, every name checked."""
        if not self.root.is_dir():
            raise DataError(f"scene folder {self.root} does not exist")
        images: dict[str, list[Path]] = defaultdict(list)
        masks: dict[str, Path] = {}
        for path in sorted(self.root.rglob("*.tif")):
            if (m := MASK.match(path.name)) is not None:
                masks[m["place"]] = path
            elif (m := DATED.match(path.name)) is not None:
                try:
                    pd.Timestamp(m["date"])
                except ValueError:
                    raise DataError(f"{path}: {m['date']} in the name is not a date "
                                    "(expected <place>_<YYYYMMDD>.tif)") from None
                images[m["place"]].append(path)
        if not images:
            raise DataError(f"no dated GeoTIFFs '<place>_<YYYYMMDD>.tif' in {self.root}")
        return dict(images), masks

    def _check_images(self, images: dict[str, list[Path]]) -> dict[str, gio.RasterInfo]:
        """Band count, enough dates, readable pixels, some valid: the first file's layout by place."""
        first = {}
        for place, files in images.items():
            if len(files) < self.prep.frames:
                raise DataError(f"{self.root}: place {place!r} has {len(files)} dates "
                                f"({', '.join(f.name for f in files)}) but num_frames="
                                f"{self.prep.frames}: every place needs at least that many dated files")
            for path in files:
                info = gio.raster_info(path)
                gio.check_band_count(info, len(self.prep.file_bands))
                if self.check_pixels:
                    gio.scan_pixels(path, self.prep.indices, self.prep.nodata)
                if self.prep.nodata is None and info.nodata is not None:
                    self.prep.nodata = float(info.nodata)
                first.setdefault(place, info)
        return first

    def _check_masks(self, masks: dict[str, Path], first: dict[str, gio.RasterInfo]) -> LabelCheck:
        check = LabelCheck(self.num_classes, self.ignore_index)
        for place, info in first.items():
            if place not in masks:
                raise DataError(f"{info.path}: place {place!r} has no label file "
                                f"{place}_mask.tif in {self.root} (labels=true)")
            label = gio.raster_info(masks[place])
            gio.check_same_grid(info, label)
            if self.check_pixels:
                check.add(*gio.read_labels(masks[place]))
            else:
                check.add_nodata(label)
        return check

    def setup(self, stage: str | None = None) -> None:
        """Read and check every file, then draw the windows and split the places."""
        if self.sets:
            return
        image_files, mask_files = self._files()
        first = self._check_images(image_files)
        labels = None
        label_nodata = 255
        if self.with_labels:
            check = self._check_masks(mask_files, first)
            self.num_classes, label_nodata = check.num_classes(), check.nodata
            used = [mask_files[p] for p in first]
            labels = self._index(lambda: Labels(used), used)
        files = [f for fs in image_files.values() for f in fs]
        images = self._index(lambda: DatedStacks(files, self.prep.file_bands, self.prep.names), files)
        self.images, self.labels = images, labels
        windows = self._windows(images)
        places = split(sorted({p for p, _ in windows}), self.val_fraction, self.test_fraction,
                       self.seed, f"places in {self.root}")
        chosen = {name: [(p, w) for p, w in windows if p in set(places[name])] for name in SPLITS}
        if self.max_train_samples is not None:  # few-label runs: a seeded subset of windows
            train = chosen["train"]
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
            chosen["train"] = [train[i] for i in sorted(order[: self.max_train_samples].tolist())]
        self.keys = {name: [(p, round(w[0].start, 3), round(w[1].start, 3)) for p, w in items]
                     for name, items in chosen.items()}
        self.sets = {name: SceneWindows(images, labels, [w for _, w in items], self.prep,
                                        self.ignore_index, label_nodata, self.target, self.cache)
                     for name, items in chosen.items()}

    def _index(self, make: Any, files: list[Path]) -> Any:
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - torchgeo's errors name no file
            raise DataError(f"{files[0].parent}: torchgeo cannot index these GeoTIFFs "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None

    def _windows(self, images: DatedStacks) -> list[tuple[str, tuple[slice, slice]]]:
        """Distinct spatial windows (one per place and position, whatever the number of dates)."""
        if self.sampler == "grid":
            sampler = GridGeoSampler(images, self.chip_size, self.stride)
        else:
            sampler = RandomGeoSampler(images, self.chip_size, self.samples_per_epoch,
                                       generator=torch.Generator().manual_seed(self.seed))
        # torchgeo 0.8.1's RandomGeoSampler draws the tile with the global RNG (its generator
        # only places the box inside the tile): fix both so windows follow the seed alone
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            queries = list(sampler)
        if not queries:
            raise DataError(f"{self.root}: the scenes are smaller than chip_size={self.chip_size} "
                            "pixels: no window fits")
        geoms = images.index.geometry
        seen: dict[tuple[float, float], tuple[str, tuple[slice, slice]]] = {}
        for x, y, _ in queries:
            key = (round(x.start, 6), round(y.start, 6))
            if key in seen:
                continue
            cx, cy = (x.start + x.stop) / 2, (y.start + y.stop) / 2
            hit = images.index[geoms.contains(_point(cx, cy))].filepath
            place = DATED.match(Path(hit.iloc[0]).name)["place"]
            seen[key] = (place, (slice(x.start, x.stop, x.step), slice(y.start, y.stop, y.step)))
        if self.sampler == "random":  # random draws land once per date: keep the requested count
            return list(seen.values())[: self.samples_per_epoch]
        return list(seen.values())

    def data_spec(self) -> Any:
        source = f"the masks <place>_mask.tif in {self.root}" if self.with_labels else None
        return self.prep.spec(num_classes=self.num_classes, ignore_index=self.ignore_index,
                              target=self.target, label_source=source)


def _point(x: float, y: float) -> Any:
    import shapely

    return shapely.Point(x, y)


def build_scenes(*, root: str | None = None, generate: bool = False,
                 file_bands: list[str] | None = None, bands: list[str | int] | None = None,
                 mean: list[float] | None = None, std: list[float] | None = None,
                 num_frames: PositiveInt = 3, chip_size: PositiveInt = 224,
                 stride: PositiveInt | None = None, sampler: Sampler = "grid",
                 samples_per_epoch: PositiveInt = 256, val_fraction: Fraction = 0.25,
                 test_fraction: Fraction = 0.25, labels: bool = True,
                 num_classes: PositiveInt | None = None, batch_size: PositiveInt = 8,
                 num_workers: NonNegativeInt = 0, seed: int = 0, ignore_index: int = -1,
                 target: Target = "mask", max_train_samples: PositiveInt | None = None,
                 cache: bool = False, check_pixels: bool = True, places: PositiveInt = 8,
                 size: PositiveInt = 64) -> SceneDataModule:
    """Dated scenes ``<place>_<YYYYMMDD>.tif`` (+ ``<place>_mask.tif``) in ``root``, split by
    place into train, validation and test (``val_fraction``, ``test_fraction``).

    ``target``: ``mask`` (per-pixel labels), ``scene`` (1 when water covers more than a fifth
    of the window) or ``ndwi`` (per-pixel water index of the last frame, for regression).
    ``num_classes``: label values are ``0..num_classes-1`` (default: found in the masks);
    the masks' nodata value (255 when unset) marks unlabelled pixels. ``check_pixels`` reads
    every file in setup (truncated, nodata-only files, labels out of range); turn it off for
    very large folders (headers are still checked). ``cache`` keeps each window in memory after
    its first read. ``generate=True`` first writes the embedded water data (``places`` scenes of
    ``size`` pixels, from ``seed``) into ``root`` (a temporary folder when ``root`` is not given).
    """
    if generate:
        root = synthetic.generated(root, "scenes", places=places, size=size, seed=seed)
    if root is None:
        raise DataError("geospatial scenes need `root` (a folder of <place>_<YYYYMMDD>.tif)")
    prep = Preprocess.create(file_bands=file_bands, bands=bands, mean=mean, std=std,
                             frames=num_frames)
    return SceneDataModule(root=root, prep=prep, chip_size=chip_size, stride=stride,
                           sampler=sampler, samples_per_epoch=samples_per_epoch,
                           val_fraction=val_fraction, test_fraction=test_fraction, labels=labels,
                           num_classes=num_classes, batch_size=batch_size,
                           num_workers=num_workers, seed=seed, ignore_index=ignore_index,
                           target=target, max_train_samples=max_train_samples, cache=cache,
                           check_pixels=check_pixels)


def write_files(folder: Path) -> dict[str, Any]:
    """A tiny copy of the scene layout (4 places, 3 dates): the harness trains on it."""
    synthetic.make_scenes(folder, places=4, size=32, seed=3)
    return {"root": str(folder), "generate": False}
