"""Broken GeoTIFFs of every kind users send, for the bad-input matrix (issue 16).

Each case starts from a good copy of the embedded data and breaks one thing: a truncated file,
the wrong band count, nodata-only or NaN-only pixels, an empty folder, labels outside the
classes, an image/label grid mismatch... The conformance harness runs each through the CLI and
requires exit status 2, one line containing ``expect`` (the file and what was wrong), no
traceback and nothing written. The plugin README lists the matrix with these messages.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from domainfm.records import BadInput

from domainfm_geospatial import synthetic
from domainfm_geospatial.io import write_geotiff

DATE = synthetic.DATES[1]


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file after ``keep`` of its bytes (a download or copy that stopped)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


_SAME = object()


def rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray], *,
            nodata: object = _SAME, size: int | None = None, crs: object = _SAME,
            dtype: str | None = None) -> Path:
    """Write ``change(pixels)`` back to ``path`` with the same georeferencing unless told."""
    with rasterio.open(path) as src:
        data, profile_crs, transform, tag = src.read(), src.crs, src.transform, src.nodata
    data = change(data)
    if size is not None:
        data = data[:, :size, :size] if data.shape[-1] >= size else np.pad(
            data, ((0, 0), (0, size - data.shape[-2]), (0, size - data.shape[-1])))
    if dtype is not None:
        data = data.astype(dtype)
    path.unlink()
    write_geotiff(path, data, crs=profile_crs if crs is _SAME else crs, transform=transform,
                  nodata=tag if nodata is _SAME else nodata)
    return path


def _fresh(folder: Path, name: str) -> Path:
    case = folder / name.replace(" ", "_").replace("/", "_")
    if case.exists():
        shutil.rmtree(case)
    case.mkdir(parents=True)
    return case


# --------------------------------------------------------------------------- scenes


def scene_cases(folder: Path) -> list[BadInput]:
    """Broken copies of the dated-scene layout (3 places x 3 dates, 32 px), one per folder."""
    folder = Path(folder)
    cases: list[tuple[str, str, dict]] = []

    def case(name: str) -> Path:
        root = _fresh(folder, name)
        synthetic.make_scenes(root, places=3, size=32, seed=5)
        return root

    empty = _fresh(folder, "empty folder")
    cases.append(("empty folder", f"no dated GeoTIFFs '<place>_<YYYYMMDD>.tif' in {empty}", {}))
    root = case("truncated GeoTIFF")
    truncate(root / f"scene01_{DATE}.tif")
    cases.append(("truncated GeoTIFF", f"scene01_{DATE}.tif: not a readable GeoTIFF", {}))
    root = case("wrong band count")
    rewrite(root / f"scene01_{DATE}.tif", lambda d: d[:4])
    cases.append(("wrong band count", f"scene01_{DATE}.tif: has 4 bands but the config "
                  "expects 6", {}))
    root = case("nodata-only date")
    rewrite(root / f"scene02_{DATE}.tif", lambda d: np.full_like(d, synthetic.NODATA))
    cases.append(("nodata-only date", f"scene02_{DATE}.tif: every pixel is nodata (-9999)", {}))
    root = case("NaN-only date")
    rewrite(root / f"scene02_{DATE}.tif", lambda d: np.full_like(d, np.nan), nodata=None)
    cases.append(("NaN-only date", f"scene02_{DATE}.tif: every pixel is nodata (-9999) or NaN",
                  {}))
    root = case("label outside the classes")
    rewrite(root / "scene01_mask.tif", lambda d: np.where(d == 1, 3, d))
    cases.append(("label outside the classes", "scene01_mask.tif: label values [3] are outside "
                  "0..1 (num_classes=2", {"num_classes": 2}))
    root = case("image/label grid mismatch")
    rewrite(root / "scene02_mask.tif", lambda d: d, size=24)
    cases.append(("image/label grid mismatch", "scene02_mask.tif: label is 24x24 pixels but "
                  "image", {}))
    root = case("missing label")
    (root / "scene00_mask.tif").unlink()
    cases.append(("missing label", "place 'scene00' has no label file scene00_mask.tif", {}))
    root = case("too few dates")
    (root / f"scene01_{DATE}.tif").unlink()
    cases.append(("too few dates", "place 'scene01' has 2 dates", {}))
    root = case("not a GeoTIFF")
    (root / f"scene00_{DATE}.tif").write_text("this is not a raster\n")
    cases.append(("not a GeoTIFF", f"scene00_{DATE}.tif: not a readable GeoTIFF", {}))
    root = case("too few places")
    for path in root.glob("scene02_*.tif"):
        path.unlink()
    cases.append(("too few places", f"places in {root}: found 2, too few for disjoint train, "
                  "validation and test splits", {}))
    return [BadInput(name, expect, {"root": str(folder / name.replace(" ", "_").replace("/", "_")),
                                    "generate": False, **extra})
            for name, expect, extra in cases]


# --------------------------------------------------------------------------- chips


def chip_cases(folder: Path) -> list[BadInput]:
    """Broken copies of the pre-chipped layout (4 image/label pairs, 32 px), one per folder."""
    folder = Path(folder)
    cases: list[tuple[str, str, dict]] = []

    def case(name: str) -> Path:
        root = _fresh(folder, name)
        synthetic.make_chips(root, chips=4, size=32, seed=6)
        return root

    empty = _fresh(folder, "empty folder")
    cases.append(("empty folder", f"no chips match '*_input.tif' in {empty}", {}))
    root = case("truncated chip")
    truncate(root / "chip01_input.tif")
    cases.append(("truncated chip", "chip01_input.tif: not a readable GeoTIFF", {}))
    root = case("truncated label")
    truncate(root / "chip02_label.tif", keep=0.3)
    cases.append(("truncated label", "chip02_label.tif: not a readable GeoTIFF", {}))
    root = case("wrong band count")
    rewrite(root / "chip01_input.tif", lambda d: d[:4])
    cases.append(("wrong band count", "chip01_input.tif: has 4 bands but the config expects 6", {}))
    root = case("all-nodata chip")
    rewrite(root / "chip03_input.tif", lambda d: np.full_like(d, synthetic.NODATA))
    cases.append(("all-nodata chip", "chip03_input.tif: every pixel is nodata (-9999)", {}))
    root = case("NaN-only chip")
    rewrite(root / "chip03_input.tif", lambda d: np.full_like(d, np.nan), nodata=None)
    cases.append(("NaN-only chip", "chip03_input.tif: every pixel is nodata (-9999) or NaN", {}))
    root = case("label outside the classes")
    rewrite(root / "chip02_label.tif", lambda d: np.where(d == 1, 7, d))
    cases.append(("label outside the classes", "chip02_label.tif: label values [7] are outside "
                  "0..1 (num_classes=2", {"num_classes": 2}))
    root = case("fractional labels")
    rewrite(root / "chip00_label.tif", lambda d: d * 0.5, dtype="float32", nodata=None)
    cases.append(("fractional labels", "chip00_label.tif: label values must be whole class "
                  "numbers", {}))
    root = case("image/label size mismatch")
    rewrite(root / "chip01_label.tif", lambda d: d, size=40)
    cases.append(("image/label size mismatch", "chip01_label.tif: label is 40x40 pixels but "
                  "image chip01_input.tif is 32x32", {}))
    root = case("image/label CRS mismatch")
    rewrite(root / "chip01_label.tif", lambda d: d, crs=rasterio.crs.CRS.from_epsg(32615))
    cases.append(("image/label CRS mismatch", "chip01_label.tif: label CRS EPSG:32615 differs "
                  "from image chip01_input.tif", {}))
    root = case("missing label")
    (root / "chip00_label.tif").unlink()
    cases.append(("missing label", "chip00_label.tif: no such file, the label of chip00_input.tif",
                  {}))
    root = case("too few chips")
    for name in ("chip02", "chip03"):
        for path in root.glob(f"{name}_*.tif"):
            path.unlink()
    cases.append(("too few chips", f"in {root}: found 2, too few for disjoint train, validation "
                  "and test splits", {}))
    root = case("tile larger than the chip")
    cases.append(("tile larger than the chip", "chip00_input.tif: is 32x32 pixels, smaller than "
                  "tile_size=48", {"tile_size": 48}))
    return [BadInput(name, expect, {"root": str(folder / name.replace(" ", "_").replace("/", "_")),
                                    "generate": False, **extra})
            for name, expect, extra in cases]


# --------------------------------------------------------------------------- predictor inputs


def geotiff_cases(folder: Path) -> list[BadInput]:
    """Broken inputs for ``geospatial.geotiff`` (models of the water data: 3 frames x 6 bands)."""
    folder = Path(folder)
    good = synthetic.example_stack(folder / "good.tif", size=40)

    def stack(name: str) -> Path:
        return Path(shutil.copy(good, folder / name))

    cases = [("missing file", folder / "missing.tif", "missing.tif: no such file")]
    (folder / "empty.tif").write_bytes(b"")
    cases.append(("empty file", folder / "empty.tif", "empty.tif: not a readable GeoTIFF"))
    (folder / "text.tif").write_text("not a raster\n")
    cases.append(("not a GeoTIFF", folder / "text.tif", "text.tif: not a readable GeoTIFF"))
    cases.append(("truncated GeoTIFF", truncate(stack("truncated.tif")),
                  "truncated.tif: not a readable GeoTIFF"))
    cases.append(("wrong band count", rewrite(stack("six_bands.tif"), lambda d: d[:6]),
                  "six_bands.tif: has 6 bands but the model expects 18"))
    cases.append(("nodata-only scene",
                  rewrite(stack("nodata.tif"), lambda d: np.full_like(d, synthetic.NODATA)),
                  "nodata.tif: every pixel is nodata (-9999)"))
    cases.append(("NaN-only scene",
                  rewrite(stack("nan.tif"), lambda d: np.full_like(d, np.nan), nodata=None),
                  "nan.tif: every pixel is nodata (-9999) or NaN"))
    png = folder / "png.tif"
    with rasterio.open(png, "w", driver="PNG", width=8, height=8, count=1, dtype="uint8",
                       crs=synthetic.CRS_UTM14N, transform=from_origin(0, 0, 30, 30)) as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    cases.append(("PNG raster", png, "png.tif: expected a GeoTIFF, got a PNG raster"))
    (folder / "no_tifs").mkdir(exist_ok=True)
    cases.append(("folder without GeoTIFFs", folder / "no_tifs", f"no .tif files in {folder / 'no_tifs'}"))
    good.unlink()
    return [BadInput(name, expect, source=str(path)) for name, path, expect in cases]
