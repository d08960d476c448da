"""Whole-scene prediction: GeoTIFF in, GeoTIFF out on the same grid, in overlapping tiles.

A scene is read tile by tile (rasterio windows), each tile's softmax is weighted by a ramp
that falls towards the tile edges, and the weighted sums are accumulated in a temporary on-disk
GeoTIFF, also window by window, with GDAL's block cache capped. Memory therefore depends on the
tile size and the batch of tiles, never on the scene size. Overlapping predictions are blended
by their normalised weights, so a model whose output at a pixel depends only on its neighbourhood
gives exactly the untiled result. Output keeps the input's CRS, transform and size.

Bands, normalisation, frames and the nodata value come from the model's data specification
(``model.spec.data``), never from the training data or config. Every input is checked before
anything is written, and a failure while predicting removes what this call had written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from tqdm.auto import tqdm

from domainfm.errors import ConfigError, DataError, DomainfmError
from domainfm.io import atomic_path
from domainfm.records import NonNegativeInt, PositiveInt

from domainfm_geospatial import io as gio
from domainfm_geospatial.data.preprocess import Preprocess, lat_lon, parse_dates

CLASS_NODATA = 255
_CACHE_MB = 8  # GDAL block cache: part of the bounded working set


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)``; the last tile is flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def ramp(tile: int, overlap: int) -> np.ndarray:
    """``(tile, tile)`` blending weights: 1 inside, falling linearly over ``overlap`` pixels."""
    width = max(1, overlap)
    edge = np.minimum(np.arange(tile) + 1, np.arange(tile)[::-1] + 1)
    w = np.clip(edge / (width + 1), 1.0 / (width + 1), 1.0).astype(np.float32)
    return np.outer(w, w)


def _tiles(height: int, width: int, tile: int, stride: int) -> Iterator[Window]:
    for y in tile_origins(height, tile, stride):
        for x in tile_origins(width, tile, stride):
            yield Window(x, y, min(tile, width - x), min(tile, height - y))


def predict_scene(
    source: Path,
    destination: Path,
    fn: Callable[[torch.Tensor], torch.Tensor],
    prep: Preprocess,
    *,
    tile: int,
    overlap: int,
    channels: int,
    batch_size: int = 4,
    kind: str = "classes",
    extra: Callable[[Any], dict[str, torch.Tensor]] | None = None,
    progress: bool = True,
) -> Path:
    """Predict ``source`` tile by tile with ``fn((B, C, T, tile, tile)) -> (B, K, tile, tile)``.

    ``kind="classes"`` writes the argmax of the blended softmax as uint8 (nodata 255);
    ``"probabilities"`` writes the blended softmax, ``"values"`` the blended raw outputs (float32).
    """
    if overlap < 0 or overlap >= tile:
        raise ConfigError(f"overlap must be in [0, tile_size={tile}), got {overlap}")
    info = check_input(source, prep, pixels=False)
    weights = torch.from_numpy(ramp(tile, overlap))
    windows = list(_tiles(info.height, info.width, tile, tile - overlap))
    with tempfile.TemporaryDirectory(prefix=".tiles-", dir=destination.parent) as tmp, \
            rasterio.Env(GDAL_CACHEMAX=_CACHE_MB):
        acc_path = Path(tmp) / "accumulator.tif"
        profile = dict(driver="GTiff", count=channels + 1, height=info.height, width=info.width,
                       dtype="float32", crs=info.crs, transform=info.transform, tiled=True,
                       blockxsize=256, blockysize=256)
        with gio.open_geotiff(source) as src, rasterio.open(acc_path, "w+", **profile) as acc:
            bar = tqdm(total=len(windows), desc=f"predict {source.name}", unit="tile",
                       disable=not progress)
            seen_valid = False
            for start in range(0, len(windows), batch_size):
                chunk = windows[start:start + batch_size]
                images, valids = zip(*(_read_tile(src, source, w, prep, tile) for w in chunk))
                seen_valid = seen_valid or any(bool(v.any()) for v in valids)
                batch_extra = extra(info) if extra else {}
                with torch.no_grad():
                    out = fn(torch.stack(images), **batch_extra).float()
                if out.ndim != 4:
                    raise ConfigError("geospatial.geotiff writes per-pixel predictions, but this "
                                      f"model's head gives {tuple(out.shape)} per batch (one "
                                      "value per window); use a segmentation or regression head")
                if kind != "values":
                    out = out.softmax(dim=1)
                for w, pred, valid in zip(chunk, out, valids):
                    h, wd = int(w.height), int(w.width)
                    wt = weights[:h, :wd] * valid[:h, :wd]
                    current = torch.from_numpy(acc.read(window=w))
                    current[:channels] += pred[:, :h, :wd] * wt
                    current[channels] += wt
                    acc.write(current.numpy(), window=w)
                bar.update(len(chunk))
            bar.close()
            if not seen_valid:
                raise gio.nodata_only(source, info.nodata if info.nodata is not None else prep.nodata)
            _finalise(acc, destination, info, channels, kind, tile)
    return destination


def check_input(path: Path, prep: Preprocess, pixels: bool = True,
                who: str = "the config") -> gio.RasterInfo:
    """A readable GeoTIFF holding ``num_frames`` stacks of ``file_bands``, with (when
    ``pixels``) every pixel readable and some valid; ``who`` says whose bands these are."""
    info = gio.raster_info(path)
    gio.check_band_count(info, prep.expected_count(), prep.what_count(), who=who)
    if pixels:
        gio.scan_pixels(path, prep.file_indices(), prep.nodata)
    return info


def _read_tile(src: Any, path: Path, window: Window, prep: Preprocess, tile: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    raw = gio.read(src, path, [i + 1 for i in prep.file_indices()], window=window)
    raw = prep.mask_nodata(raw, src.nodata)
    h, w = raw.shape[-2:]
    if (h, w) != (tile, tile):  # a scene smaller than the tile: pad with nodata
        raw = np.pad(raw, ((0, 0), (0, tile - h), (0, tile - w)), constant_values=np.nan)
    image, valid = prep(raw)
    return image, valid.float()


def _finalise(acc: Any, destination: Path, info: gio.RasterInfo, channels: int, kind: str,
              block: int) -> None:
    """Divide the weighted sums by the weights, block by block, into the output GeoTIFF."""
    classes = kind == "classes"
    count = 1 if classes else channels
    profile = dict(driver="GTiff", count=count, height=info.height, width=info.width,
                   dtype="uint8" if classes else "float32", crs=info.crs,
                   transform=info.transform, nodata=CLASS_NODATA if classes else np.nan,
                   compress="deflate")
    if info.height >= 256 and info.width >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(destination) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for w in _tiles(info.height, info.width, block, block):
            data = acc.read(window=w)
            weight = data[channels]
            covered = weight > 0
            mean = data[:channels] / np.where(covered, weight, 1.0)
            if classes:
                out = np.where(covered, mean.argmax(axis=0), CLASS_NODATA).astype(np.uint8)[None]
            else:
                out = np.where(covered[None], mean, np.nan).astype(np.float32)
            dst.write(out, window=w)


# --------------------------------------------------------------------------- the predictor


def build_predictor(*, tile_size: PositiveInt | None = None, overlap: NonNegativeInt = 16,
                    batch_size: PositiveInt = 4,
                    output: Literal["classes", "probabilities", "values"] = "classes",
                    dates: list[str] | None = None, progress: bool = True,
                    quicklook: bool = False) -> Callable[..., list[Path]]:
    """GeoTIFF(s) -> ``<stem>_pred.tif`` on the same grid.

    Inputs hold ``num_frames`` time-major stacks of the training data's ``file_bands``; bands,
    normalisation, frames and nodata come from the model's data specification. ``dates`` (one
    per frame) are required by models with temporal encoding. ``output``: classes,
    probabilities or values (regression heads always write values). ``quicklook`` also writes
    ``<stem>_pred.png``: the last frame in true colour beside the result.
    """

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        encoder, head = model.encoder, model.head
        if head is None:
            raise ConfigError("geospatial prediction needs a fine-tuned model with a head")
        prep = Preprocess.from_spec(model.spec.data)
        frames = prep.frames
        temporal = parse_dates(dates) if dates else None
        if encoder.temporal_encoding and temporal is None:
            raise ConfigError("this model uses temporal encoding: give the predictor `dates` "
                              f"(one YYYY-MM-DD per frame, {frames} in all)")
        if temporal is not None and len(temporal) != frames:
            raise ConfigError(f"`dates` has {len(temporal)} entries for {frames} frames")

        def fn(x: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
            batch = {"image": x, **{k: v.expand(len(x), *v.shape[1:]) for k, v in extra.items()}}
            out = head(encoder(batch), batch)
            return out.unsqueeze(1) if out.ndim == 3 else out

        def coords(info: gio.RasterInfo) -> dict[str, torch.Tensor]:
            cx, cy = info.transform @ (info.width / 2, info.height / 2)
            extra = {"location_coords": lat_lon(info.crs, cx, cy)[None]}
            if temporal is not None:
                extra["temporal_coords"] = temporal[None]
            return extra

        source, destination = Path(source), Path(destination)
        if source.is_dir():
            sources = sorted(source.glob("*.tif"))
            if not sources:
                raise DataError(f"no .tif files in {source}")
        else:
            sources = [source]
        for path in sources:  # every input checked before anything is written
            check_input(path, prep, who="the model")
        tile = tile_size or encoder.img_size
        num_classes = getattr(head, "num_classes", 1)
        kind = "values" if not hasattr(head, "num_classes") else output
        created = not destination.exists()
        written: list[Path] = []
        was_training = encoder.training
        encoder.eval(), head.eval()
        try:
            destination.mkdir(parents=True, exist_ok=True)
            for path in sources:
                out = predict_scene(
                    path, destination / f"{path.stem}_pred.tif", fn, prep, tile=tile,
                    overlap=min(overlap, tile // 2), channels=num_classes, batch_size=batch_size,
                    kind=kind, extra=coords, progress=progress)
                written.append(out)
                if quicklook:
                    written.append(_quicklook(path, out, prep))
        except DomainfmError:
            if created:
                shutil.rmtree(destination, ignore_errors=True)
            else:
                for path in written:
                    path.unlink(missing_ok=True)
            raise
        finally:
            encoder.train(was_training), head.train(was_training)
        return written

    return run


def _quicklook(source: Path, prediction: Path, prep: Preprocess) -> Path:
    from domainfm_geospatial.plots import scene_and_prediction

    last = prep.file_indices()[-len(prep.indices):]  # the last frame's selected bands
    names = prep.names
    rgb = [last[names.index(b)] for b in ("RED", "GREEN", "BLUE")] if {"RED", "GREEN", "BLUE"} \
        <= set(names) else last[:3] if len(last) >= 3 else [last[0]] * 3
    return scene_and_prediction(source, prediction, rgb, prediction.with_suffix(".png"))


def write_example(folder: Path) -> Path:
    """An 80 x 80, three-date stack of the embedded water data (several tiles of the tiny model)."""
    from domainfm_geospatial.synthetic import example_stack

    return example_stack(Path(folder) / "water_scene.tif")
