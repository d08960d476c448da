"""GeoTIFF reading and writing with the checks users otherwise discover as silent garbage.

Everything read here is validated against what the config expects (band count, matching grids,
some valid pixels) and every error names the file and the offending value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from domainfm.errors import DataError
from domainfm.io import atomic_path


class GeoTiffError(DataError):
    """A raster file that cannot be used as given."""


@dataclass(frozen=True)
class RasterInfo:
    """The georeferencing and layout of a raster file."""

    path: Path
    count: int
    height: int
    width: int
    crs: Any
    transform: Any
    nodata: float | None
    descriptions: tuple[str | None, ...]


def open_geotiff(path: str | Path) -> rasterio.io.DatasetReader:
    """Open ``path`` with rasterio, insisting that it is a GeoTIFF."""
    path = Path(path)
    if not path.is_file():
        raise GeoTiffError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioError as exc:
        raise GeoTiffError(f"{path}: not a readable GeoTIFF ({_first_line(exc)})") from None
    if src.driver != "GTiff":
        src.close()
        raise GeoTiffError(f"{path}: expected a GeoTIFF, got a {src.driver} raster")
    return src


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _info(path: str | Path, src: Any) -> RasterInfo:
    return RasterInfo(Path(path), src.count, src.height, src.width, src.crs, src.transform,
                      src.nodata, tuple(src.descriptions))


def raster_info(path: str | Path) -> RasterInfo:
    with open_geotiff(path) as src:
        return _info(path, src)


def read(src: Any, path: str | Path, indexes: list[int] | None = None, **kwargs: Any) -> np.ndarray:
    """``src.read`` whose failures (a truncated or corrupt file) name the file."""
    try:
        return src.read(indexes, **kwargs)
    except RasterioError as exc:
        cause = exc.__cause__ or exc.__context__
        detail = _first_line(cause) if cause is not None else _first_line(exc)
        raise GeoTiffError(f"{path}: not a readable GeoTIFF: its pixels cannot be read "
                           f"(truncated or corrupt file? {detail})") from None


def check_band_count(info: RasterInfo, expected: int, what: str = "file_bands",
                     who: str = "the config") -> None:
    if info.count != expected:
        raise GeoTiffError(
            f"{info.path}: has {info.count} bands but {who} expects {expected} "
            f"(`{what}`); list the bands stored in this file"
        )


def check_same_grid(image: RasterInfo, label: RasterInfo) -> None:
    """Image and label must share size and, when both are georeferenced, CRS and transform."""
    if (image.height, image.width) != (label.height, label.width):
        raise GeoTiffError(
            f"{label.path}: label is {label.height}x{label.width} pixels but image "
            f"{image.path.name} is {image.height}x{image.width}; they must cover the same grid"
        )
    if image.crs is not None and label.crs is not None:
        if image.crs != label.crs:
            raise GeoTiffError(
                f"{label.path}: label CRS {label.crs} differs from image {image.path.name} "
                f"CRS {image.crs}; reproject one of them"
            )
        if not image.transform.almost_equals(label.transform):
            raise GeoTiffError(
                f"{label.path}: label transform {tuple(label.transform)[:6]} differs from image "
                f"{image.path.name} transform {tuple(image.transform)[:6]}"
            )


def read_bands(path: str | Path, indices: list[int] | None = None) -> tuple[np.ndarray, RasterInfo]:
    """Read bands (0-based ``indices``, default all) as float32 ``(C, H, W)``; nodata becomes NaN."""
    with open_geotiff(path) as src:
        info = _info(path, src)
        data = read(src, path, [i + 1 for i in indices] if indices is not None else None)
    data = data.astype(np.float32)
    if info.nodata is not None and not np.isnan(info.nodata):
        data[data == info.nodata] = np.nan
    return data, info


def read_labels(path: str | Path) -> tuple[np.ndarray, RasterInfo]:
    """The first band of a label raster, as stored (integers), and its layout."""
    with open_geotiff(path) as src:
        info = _info(path, src)
        labels = read(src, path, 1)
    if not np.issubdtype(labels.dtype, np.integer):
        finite = labels[np.isfinite(labels)]
        if not np.array_equal(finite, np.round(finite)):
            raise GeoTiffError(f"{path}: label values must be whole class numbers, got "
                               f"{labels.dtype} values such as {finite[finite != np.round(finite)][0]:g}")
    return labels, info


def nodata_only(path: str | Path, nodata: float | None) -> GeoTiffError:
    """The error for a file without a single valid pixel."""
    what = f"nodata ({nodata:g}) or NaN" if nodata is not None else "NaN (no nodata value set)"
    return GeoTiffError(f"{path}: every pixel is {what}; remove this file or fix its nodata value")


def scan_pixels(path: str | Path, indices: list[int], nodata: float | None = None,
                max_bytes: int = 16 * 2**20) -> RasterInfo:
    """Read every pixel of the bands ``indices`` (0-based), a few rows at a time: a truncated
    or corrupt file fails naming it, and so does a file without a single pixel valid in all of
    them (nodata: the file's tag, else ``nodata``; NaN is always missing)."""
    with open_geotiff(path) as src:
        info = _info(path, src)
        value = info.nodata if info.nodata is not None else nodata
        rows = max(1, max_bytes // max(1, 4 * info.width * len(indices)))
        found = False
        for top in range(0, info.height, rows):
            window = Window(0, top, info.width, min(rows, info.height - top))
            data = read(src, path, [i + 1 for i in indices], window=window).astype(np.float32)
            if value is not None and not np.isnan(value):
                data[data == value] = np.nan
            found = found or bool(np.isfinite(data).all(axis=0).any())
    if not found:
        raise nodata_only(path, value)
    return info


def write_geotiff(path: str | Path, array: np.ndarray, *, crs: Any, transform: Any,
                  nodata: float | None = None, descriptions: list[str] | None = None) -> Path:
    """Write ``(C, H, W)`` or ``(H, W)`` atomically as a tiled, compressed GeoTIFF."""
    array = array[None] if array.ndim == 2 else array
    count, height, width = array.shape
    tiled = height >= 256 and width >= 256
    profile = dict(driver="GTiff", count=count, height=height, width=width, dtype=array.dtype,
                   crs=crs, transform=transform, nodata=nodata, compress="deflate")
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array)
            for i, text in enumerate(descriptions or [], start=1):
                dst.set_band_description(i, text)
    return Path(path)
