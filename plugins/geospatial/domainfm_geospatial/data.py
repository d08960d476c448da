"""Datamodules for scenes (dated GeoTIFF time series, via torchgeo) and for pre-chipped pairs.

Every sample is ``{"image": (C, T, H, W) normalised float, "target": (H, W) long with
ignore_index where unlabelled or nodata, "temporal_coords": (T, 2) (year, day-of-year),
"location_coords": (2,) (lat, lon)}``. Nodata pixels are set to 0 after normalisation (the band
mean) and excluded from the loss.

Sharding: the scene windows are drawn once per setup from torchgeo's geo samplers (grid, or
random with a seeded generator) and served by a map-style dataset, so Lightning's
DistributedSampler gives every DDP rank a disjoint, seed-reproducible share; chips are map-style
too. DistributedSampler pads the last ranks with repeated samples when the epoch does not divide.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from rasterio.warp import transform as warp_transform
from torch.utils.data import DataLoader, Dataset
from torchgeo.datasets import NonGeoDataset, RasterDataset
from torchgeo.datasets.utils import stack_samples
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from domainfm.errors import DomainfmError
from domainfm_geospatial import io as gio
from domainfm_geospatial.bands import HLS_BANDS, normalisation, select_bands

# --------------------------------------------------------------------------- shared helpers


@dataclass
class Preprocess:
    """Band selection + per-band normalisation + nodata masking, shared by data and predict."""

    indices: list[int]
    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    frames: int
    file_bands: list[str]

    @classmethod
    def create(cls, *, file_bands: list[str] | None, bands: list[str | int] | None,
               mean: list[float] | None, std: list[float] | None, frames: int) -> Preprocess:
        file_bands = list(file_bands or HLS_BANDS)
        indices, names = select_bands(bands if bands is not None else list(file_bands), file_bands)
        m, s = normalisation(names, mean, std)
        return cls(indices, names, np.asarray(m, np.float32), np.asarray(s, np.float32), frames,
                   file_bands)

    def file_indices(self) -> list[int]:
        """Band indices for a file holding ``frames`` time-major stacks of ``file_bands``."""
        per = len(self.file_bands)
        return [t * per + i for t in range(self.frames) for i in self.indices]

    def expected_count(self) -> int:
        return len(self.file_bands) * self.frames

    def __call__(self, raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T*C, H, W)`` with NaN nodata -> normalised ``(C, T, H, W)`` and valid ``(H, W)``."""
        x = raw.reshape(self.frames, len(self.indices), *raw.shape[-2:])
        valid = np.isfinite(x).all(axis=(0, 1))
        x = (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        x = np.nan_to_num(x, nan=0.0)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2, 3))), torch.from_numpy(valid)


def day_coords(day: pd.Timestamp) -> list[float]:
    return [float(day.year), float(day.dayofyear)]


def parse_dates(dates: list[str]) -> torch.Tensor:
    """``["2023-04-15", ...]`` or ``["20230415", ...]`` -> ``(T, 2)`` (year, day-of-year)."""
    out = []
    for d in dates:
        try:
            out.append(day_coords(pd.Timestamp(str(d))))
        except ValueError:
            raise DomainfmError(f"date {d!r} is not a date (expected YYYY-MM-DD)") from None
    return torch.tensor(out, dtype=torch.float32)


def lat_lon(crs: Any, x: float, y: float) -> torch.Tensor:
    if crs is None:
        return torch.zeros(2)
    lon, lat = warp_transform(crs, "EPSG:4326", [x], [y])
    return torch.tensor([lat[0], lon[0]], dtype=torch.float32)


def _split(items: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Seeded split; a single item serves as both train and val (smoke tests on one chip)."""
    if len(items) < 2:
        return items, items
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(len(items) - 1, max(1, round(val_fraction * len(items))))
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


class _LoaderMixin(pl.LightningDataModule):
    batch_size: int
    num_workers: int
    train_set: Dataset
    val_set: Dataset

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=collate,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return stack_samples(samples)


# --------------------------------------------------------------------------- scenes


class DatedStacks(RasterDataset):
    """torchgeo index of ``<place>_<YYYYMMDD>.tif`` multi-band stacks (one file per date)."""

    filename_glob = "*.tif"
    filename_regex = r"^(?P<place>.+)_(?P<date>\d{8})\."
    date_format = "%Y%m%d"

    def __init__(self, root: Path, file_bands: list[str], band_names: list[str]) -> None:
        self.all_bands = tuple(file_bands)
        super().__init__(paths=root, bands=band_names)


class Labels(RasterDataset):
    """torchgeo index of ``<place>_mask.tif`` label rasters."""

    filename_glob = "*_mask.tif"
    filename_regex = r"^(?P<place>.+)_mask\."
    is_image = False


class SceneWindows(Dataset):
    """Map-style dataset over fixed geo windows of dated scenes: one sample = all dates."""

    def __init__(self, images: DatedStacks, labels: Labels | None, windows: list[tuple[slice, slice]],
                 prep: Preprocess, frames: int, ignore_index: int, nodata: float | None,
                 target: str = "mask", cache: bool = False) -> None:
        self.images, self.labels, self.windows = images, labels, windows
        self.target = target
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None
        self.prep, self.frames, self.ignore_index, self.nodata = prep, frames, ignore_index, nodata

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
        dates = self.dates_at(x, y)
        files = sorted(self.images.index.cx[x.start:x.stop, y.start:y.stop].filepath)
        if len(dates) < self.frames:
            raise DomainfmError(
                f"window x={x.start:.0f}..{x.stop:.0f}, y={y.start:.0f}..{y.stop:.0f} has "
                f"{len(dates)} dates ({', '.join(Path(f).name for f in files)}) but "
                f"num_frames={self.frames}: every place needs at least that many dated files"
            )
        dates = dates[-self.frames:]  # the latest frames, in time order
        stack = [self.images[x, y, slice(d.left, d.right)]["image"].numpy() for d in dates]
        raw = np.concatenate(stack).astype(np.float32)
        if self.nodata is not None:
            raw[raw == self.nodata] = np.nan
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
            target[(target == gio_label_nodata(self.labels)) | ~valid] = self.ignore_index
            if self.target == "scene":  # does water cover more than a fifth of the window?
                labelled = target != self.ignore_index
                share = (target == 1)[labelled].float().mean() if labelled.any() else 0.0
                target = torch.tensor(int(share > SCENE_WATER_SHARE))
            sample["target"] = target
        return sample


SCENE_WATER_SHARE = 0.2
TARGETS = ("mask", "scene", "ndwi")


def ndwi(frame: np.ndarray, names: list[str]) -> torch.Tensor:
    """McFeeters' water index (GREEN - NIR) / (GREEN + NIR) of one frame; NaN where nodata."""
    missing = [b for b in ("GREEN", "NIR_NARROW") if b not in names]
    if missing:
        raise DomainfmError(f"target 'ndwi' needs bands GREEN and NIR_NARROW; {missing} not in "
                            f"the selected bands {names}")
    green, nir = frame[names.index("GREEN")], frame[names.index("NIR_NARROW")]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (green - nir) / (green + nir)
    return torch.from_numpy(np.where(np.isfinite(value), value, np.nan).astype(np.float32))


def gio_label_nodata(labels: Labels) -> int:
    """The label files' nodata value (255 when unset, the usual uint8 convention)."""
    if not hasattr(labels, "_nodata"):
        info = gio.raster_info(labels.index.filepath.iloc[0])
        labels._nodata = int(info.nodata) if info.nodata is not None else 255
    return labels._nodata


class SceneDataModule(_LoaderMixin):
    """Windows of dated scene stacks, sampled with torchgeo's grid or seeded random sampler."""

    def __init__(self, *, root: str, file_bands: list[str] | None, bands: list[str | int] | None,
                 mean: list[float] | None, std: list[float] | None, num_frames: int,
                 chip_size: int, stride: int | None, sampler: str, samples_per_epoch: int,
                 val_fraction: float, labels: bool, batch_size: int, num_workers: int, seed: int,
                 ignore_index: int, target: str = "mask",
                 max_train_samples: int | None = None, cache: bool = False) -> None:
        super().__init__()
        self.max_train_samples, self.cache = max_train_samples, cache
        if target not in TARGETS:
            raise DomainfmError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.target = target
        self.root = Path(root)
        self.prep = Preprocess.create(file_bands=file_bands, bands=bands, mean=mean, std=std,
                                      frames=num_frames)
        if sampler not in ("grid", "random"):
            raise DomainfmError(f"sampler must be 'grid' or 'random', got {sampler!r}")
        self.num_frames, self.chip_size = num_frames, chip_size
        self.stride = stride or chip_size
        self.sampler, self.samples_per_epoch = sampler, samples_per_epoch
        self.val_fraction, self.with_labels = val_fraction, labels
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.ignore_index = ignore_index

    def _check_files(self, files: list[str]) -> float | None:
        nodata = None
        for f in files:
            info = gio.raster_info(f)
            gio.check_band_count(info, len(self.prep.file_bands))
            nodata = info.nodata if info.nodata is not None else nodata
        return nodata

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        if not self.root.is_dir():
            raise DomainfmError(f"scene folder {self.root} does not exist")
        try:
            images = DatedStacks(self.root, self.prep.file_bands, self.prep.names)
        except Exception as exc:  # torchgeo's DatasetNotFoundError names no pattern
            raise DomainfmError(f"no dated GeoTIFFs '<place>_<YYYYMMDD>.tif' in {self.root} "
                                f"({type(exc).__name__})") from None
        nodata = self._check_files(list(images.index.filepath))
        labels = None
        if self.with_labels and self.target != "ndwi":
            try:
                labels = Labels(paths=self.root)
            except Exception:
                raise DomainfmError(f"labels=true but no '<place>_mask.tif' in {self.root}") from None
        self.images, self.labels = images, labels
        windows = self._windows(images)
        places = sorted({p for p, _ in windows})
        train_places, val_places = _split(places, self.val_fraction, self.seed)
        pick = lambda chosen: [w for p, w in windows if p in set(chosen)]  # noqa: E731
        args = (images, labels)
        kw = dict(prep=self.prep, frames=self.num_frames, ignore_index=self.ignore_index,
                  nodata=nodata, target=self.target, cache=self.cache)
        train = pick(train_places)
        if self.max_train_samples is not None:  # few-label runs: a seeded subset of windows
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
            train = [train[i] for i in sorted(order[: self.max_train_samples].tolist())]
        self.train_set = SceneWindows(*args, train, **kw)
        self.val_set = SceneWindows(*args, pick(val_places), **kw)

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
        geoms = images.index.geometry
        seen: dict[tuple[float, float], tuple[str, tuple[slice, slice]]] = {}
        for x, y, _ in queries:
            key = (round(x.start, 6), round(y.start, 6))
            if key in seen:
                continue
            cx, cy = (x.start + x.stop) / 2, (y.start + y.stop) / 2
            hit = images.index[geoms.contains(_point(cx, cy))].filepath
            place = re.match(DatedStacks.filename_regex, Path(hit.iloc[0]).name)["place"]
            seen[key] = (place, (slice(x.start, x.stop, x.step), slice(y.start, y.stop, y.step)))
        if self.sampler == "random":  # random draws land once per date: keep the requested count
            return list(seen.values())[: self.samples_per_epoch]
        return list(seen.values())


def _point(x: float, y: float) -> Any:
    import shapely

    return shapely.Point(x, y)


def _generated(root: str | None, kind: str, **kwargs: Any) -> str:
    """``root``, filled with the embedded synthetic data first when it has none."""
    from domainfm_geospatial import synthetic

    folder = Path(root) if root else Path(tempfile.mkdtemp(prefix="domainfm-geospatial-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.glob("*_mask.tif" if kind == "scenes" else "*_label.tif")):
        getattr(synthetic, f"make_{kind}")(folder, **kwargs)
    return str(folder)


def build_scenes(*, root: str | None = None, generate: bool = False,
                 file_bands: list[str] | None = None, bands: list[str | int] | None = None,
                 mean: list[float] | None = None, std: list[float] | None = None,
                 num_frames: int = 3, chip_size: int = 224, stride: int | None = None,
                 sampler: str = "grid", samples_per_epoch: int = 256, val_fraction: float = 0.25,
                 labels: bool = True, batch_size: int = 8, num_workers: int = 0, seed: int = 0,
                 ignore_index: int = -1, target: str = "mask",
                 max_train_samples: int | None = None, cache: bool = False, places: int = 8,
                 size: int = 64) -> SceneDataModule:
    """Dated scenes ``<place>_<YYYYMMDD>.tif`` (+ ``<place>_mask.tif``) in ``root``, split by place.

    ``target``: ``mask`` (per-pixel labels), ``scene`` (1 when water covers more than a fifth
    of the window) or ``ndwi`` (per-pixel water index of the last frame, for regression).
    ``cache`` keeps each window in memory after its first read (small datasets, many epochs).
    ``generate=True`` first writes the embedded water data (``places`` scenes of ``size`` pixels,
    from ``seed``) into ``root`` (a temporary folder when ``root`` is not given).
    """
    if generate:
        root = _generated(root, "scenes", places=places, size=size, seed=seed)
    if root is None:
        raise DomainfmError("geospatial scenes need `root` (a folder of <place>_<YYYYMMDD>.tif)")
    return SceneDataModule(root=root, file_bands=file_bands, bands=bands, mean=mean, std=std,
                           num_frames=num_frames, chip_size=chip_size, stride=stride,
                           sampler=sampler, samples_per_epoch=samples_per_epoch,
                           val_fraction=val_fraction, labels=labels, batch_size=batch_size,
                           num_workers=num_workers, seed=seed, ignore_index=ignore_index,
                           target=target, max_train_samples=max_train_samples, cache=cache)


def build_water(*, root: str | None = None, places: int = 8, size: int = 64, chip_size: int = 32,
                stride: int | None = None, num_frames: int = 3, target: str = "mask",
                sampler: str = "grid", samples_per_epoch: int = 64, batch_size: int = 8,
                num_workers: int = 0, seed: int = 0, val_fraction: float = 0.25,
                max_train_samples: int | None = None) -> SceneDataModule:
    """The embedded water dataset, generated from ``seed`` into ``root`` (default: a temp folder).

    ``target``: ``mask`` (water segmentation), ``scene`` (is the window mostly water?) or
    ``ndwi`` (per-pixel water index regression). ``max_train_samples`` keeps a seeded subset
    of the training windows (few-label experiments).
    """
    return build_scenes(root=root, generate=True, places=places, size=size, chip_size=chip_size,
                        stride=stride, num_frames=num_frames, target=target, sampler=sampler,
                        samples_per_epoch=samples_per_epoch, batch_size=batch_size,
                        num_workers=num_workers, seed=seed, val_fraction=val_fraction,
                        max_train_samples=max_train_samples, cache=True)


# --------------------------------------------------------------------------- chips


class ChipDataset(NonGeoDataset):
    """Pre-chipped image/label GeoTIFF pairs (Sen1Floods11, HLS burn scars layouts)."""

    def __init__(self, pairs: list[tuple[Path, Path | None]], prep: Preprocess,
                 dates: torch.Tensor | None, ignore_index: int, label_nodata: int | None) -> None:
        self.pairs, self.prep, self.dates = pairs, prep, dates
        self.ignore_index, self.label_nodata = ignore_index, label_nodata

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image_path, label_path = self.pairs[i]
        raw, info = gio.read_bands(image_path, self.prep.file_indices())
        image, valid = self.prep(raw)
        if not valid.any():
            raise DomainfmError(f"{image_path}: every pixel is nodata ({info.nodata}); "
                                "remove this chip or fix its nodata value")
        cx, cy = info.transform @ (info.width / 2, info.height / 2)
        sample: dict[str, Any] = {"image": image,
                                  "location_coords": lat_lon(info.crs, cx, cy)}
        if self.dates is not None:
            sample["temporal_coords"] = self.dates
        if label_path is not None:
            with gio.open_geotiff(label_path) as src:
                label = src.read(1)
                nodata = src.nodata if self.label_nodata is None else self.label_nodata
            target = torch.from_numpy(label.astype(np.int64))
            if nodata is not None:
                target[torch.from_numpy(label == nodata)] = self.ignore_index
            target[~valid] = self.ignore_index
            sample["target"] = target
        return sample


class ChipDataModule(_LoaderMixin):
    """Image chips ``<root>/<image_glob>``; labels found by replacing ``label_from`` -> ``label_to``."""

    def __init__(self, *, root: str, image_glob: str, label_from: str, label_to: str,
                 labels: bool, prep: Preprocess, dates: list[str] | None, val_fraction: float,
                 batch_size: int, num_workers: int, seed: int, ignore_index: int,
                 label_nodata: int | None) -> None:
        super().__init__()
        self.root, self.image_glob = Path(root), image_glob
        self.label_from, self.label_to, self.with_labels = label_from, label_to, labels
        self.prep = prep
        self.dates = parse_dates(dates) if dates else None
        if self.dates is not None and len(self.dates) != prep.frames:
            raise DomainfmError(f"`dates` has {len(self.dates)} entries but num_frames="
                                f"{prep.frames}: give one date per frame")
        self.val_fraction, self.batch_size = val_fraction, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.ignore_index, self.label_nodata = ignore_index, label_nodata

    def pairs(self) -> list[tuple[Path, Path | None]]:
        """Every image with its label, checked for band count, size and CRS."""
        if not self.root.is_dir():
            raise DomainfmError(f"chip folder {self.root} does not exist")
        images = sorted(self.root.glob(self.image_glob))
        if not images:
            raise DomainfmError(f"no chips match {self.image_glob!r} in {self.root}")
        pairs: list[tuple[Path, Path | None]] = []
        for image in images:
            info = gio.raster_info(image)
            gio.check_band_count(info, self.prep.expected_count(),
                                 "file_bands x num_frames" if self.prep.frames > 1 else "file_bands")
            label = None
            if self.with_labels:
                rel = str(image.relative_to(self.root))
                if self.label_from not in rel:
                    raise DomainfmError(f"{image}: name lacks {self.label_from!r}, so its label "
                                        f"cannot be found (label_from/label_to)")
                label = self.root / rel.replace(self.label_from, self.label_to)
                gio.check_same_grid(info, gio.raster_info(label))
            pairs.append((image, label))
        return pairs

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):
            return
        train, val = _split(self.pairs(), self.val_fraction, self.seed)
        kw = dict(prep=self.prep, dates=self.dates, ignore_index=self.ignore_index,
                  label_nodata=self.label_nodata)
        self.train_set, self.val_set = ChipDataset(train, **kw), ChipDataset(val, **kw)


def build_chips(*, root: str | None = None, generate: bool = False,
                chips: int = 8, size: int = 32, image_glob: str = "*_input.tif",
                label_from: str = "_input", label_to: str = "_label", labels: bool = True,
                file_bands: list[str] | None = None, bands: list[str | int] | None = None,
                mean: list[float] | None = None, std: list[float] | None = None,
                num_frames: int = 1, dates: list[str] | None = None, val_fraction: float = 0.25,
                batch_size: int = 8, num_workers: int = 0, seed: int = 0, ignore_index: int = -1,
                label_nodata: int | None = None) -> ChipDataModule:
    """Chips whose ``file_bands`` (names of the bands in each file, per frame, time-major) are
    selected by ``bands`` (names or 0-based indices); ``dates`` (one per frame) feed temporal
    encodings. Sen1Floods11: ``image_glob="S1Hand/*.tif", label_from="S1Hand",
    label_to="LabelHand"``; HLS burn scars: ``image_glob="*_merged.tif", label_from="_merged",
    label_to=".mask"``. ``generate=True`` first writes ``chips`` embedded water chips of ``size``
    pixels into ``root`` (a temporary folder when ``root`` is None)."""
    if generate:
        root = _generated(root, "chips", chips=chips, size=size, frames=num_frames, seed=seed)
    if root is None:
        raise DomainfmError("geospatial chips need `root` (a folder of image/label GeoTIFFs)")
    prep = Preprocess.create(file_bands=file_bands, bands=bands, mean=mean, std=std,
                             frames=num_frames)
    return ChipDataModule(root=root, image_glob=image_glob, label_from=label_from,
                          label_to=label_to, labels=labels, prep=prep, dates=dates,
                          val_fraction=val_fraction, batch_size=batch_size,
                          num_workers=num_workers, seed=seed, ignore_index=ignore_index,
                          label_nodata=label_nodata)
