"""The embedded dataset: small HLS-like GeoTIFF time series with a learnable "water" class.

Generated from a fixed seed in a few hundred milliseconds, never downloaded. Each place is a
georeferenced scene (UTM zone 14N, 30 m pixels) observed on three dates, with six bands of
surface reflectance x 10000 in Prithvi's order. Water is a smooth random blob pattern: dark in
NIR/SWIR, slightly brighter in blue; land is vegetation whose NIR follows the season. Clouds
cover part of one date in some scenes, so several dates help, and place 0 has a nodata margin.

No fixed per-pixel threshold separates water from land everywhere, as in real scenes: each place
has its own water turbidity (clear to sediment-laden, brighter in the visible) and its own
atmosphere and sensor response (a gain and offset per band), and dark wet fields or shadows
darken land on one date. A model has to judge a pixel against its place and its neighbours,
which is what pretraining on many unlabelled places teaches.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from domainfm_geospatial.bands import HLS_BANDS
from domainfm_geospatial.io import write_geotiff

DATES = ("20230415", "20230715", "20231015")
NODATA = -9999.0
LABEL_NODATA = 255
CRS_UTM14N = CRS.from_epsg(32614)
_WATER = np.array([900.0, 1000.0, 750.0, 350.0, 150.0, 100.0], dtype=np.float32)
_SOIL = np.array([700.0, 1000.0, 1300.0, 2200.0, 2600.0, 1900.0], dtype=np.float32)
_VEG = np.array([350.0, 700.0, 450.0, 4000.0, 2000.0, 1000.0], dtype=np.float32)
_TURBID = np.array([1400.0, 1700.0, 1500.0, 900.0, 350.0, 200.0], dtype=np.float32)


def _field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    f = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-9)


def scene(rng: np.random.Generator, size: int, dates: tuple[str, ...] = DATES,
          clouds: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One place: reflectance ``(T, 6, size, size)`` float32 and water label ``(size, size)``."""
    water = _field(rng, size, size / 10) > rng.uniform(0.4, 0.9)
    green = np.clip(0.5 + 0.35 * _field(rng, size, size / 16), 0, 1)
    turbidity = rng.uniform(0.0, 1.0)
    water_colour = (_WATER * (1 - turbidity) + _TURBID * turbidity)[:, None, None]
    gain = rng.uniform(0.75, 1.25, size=6)[:, None, None]  # this place's atmosphere and sensor
    offset = rng.normal(0.0, 150.0, size=6)[:, None, None]
    wet_date = rng.integers(len(dates))
    wet = _field(rng, size, size / 24) > 1.2  # dark wet fields / shadows on one date
    frames = []
    for k, d in enumerate(dates):
        season = np.sin(np.pi * (date.fromisoformat(f"{d[:4]}-{d[4:6]}-{d[6:]}").timetuple().tm_yday
                                 / 365.0))
        veg = (green * season)[None]
        land = _SOIL[:, None, None] * (1 - veg) + _VEG[:, None, None] * veg
        if k == wet_date:
            land = np.where(wet[None], land * 0.45, land)
        img = np.where(water[None], water_colour, land)
        img = img * gain + offset + rng.normal(0, 120, img.shape)
        if clouds and rng.random() < 0.5 and k == 1:
            cloud = _field(rng, size, size / 12) > 1.0
            img = np.where(cloud[None], 6000 + rng.normal(0, 300, img.shape), img)
        frames.append(np.clip(img, 0, 10_000).astype(np.float32))
    return np.stack(frames), water.astype(np.uint8)


def make_scenes(root: str | Path, *, places: int = 8, size: int = 64, seed: int = 0,
                dates: tuple[str, ...] = DATES) -> Path:
    """Write ``scene{i:02d}_{YYYYMMDD}.tif`` (6 bands) and ``scene{i:02d}_mask.tif`` per place."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for p in range(places):
        images, label = scene(rng, size, dates)
        # places sit on a row, 2 km apart, so they never overlap
        transform = from_origin(440_000 + p * (size * 30 + 2_000), 3_160_000, 30, 30)
        if p == 0:  # a nodata margin, as at the edge of an HLS tile
            images[:, :, :, :4] = NODATA
            label[:, :4] = LABEL_NODATA
        for d, img in zip(dates, images):
            write_geotiff(root / f"scene{p:02d}_{d}.tif", img, crs=CRS_UTM14N, transform=transform,
                          nodata=NODATA, descriptions=list(HLS_BANDS))
        write_geotiff(root / f"scene{p:02d}_mask.tif", label, crs=CRS_UTM14N, transform=transform,
                      nodata=LABEL_NODATA)
    return root


def make_chips(root: str | Path, *, chips: int = 8, size: int = 32, frames: int = 1,
               seed: int = 0) -> Path:
    """Pre-chipped layout: ``chip{i:02d}_input.tif`` (6 x frames bands, time-major) + ``_label``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for i in range(chips):
        images, label = scene(rng, size, DATES[:frames], clouds=False)
        transform = from_origin(440_000 + i * (size * 30 + 2_000), 3_200_000, 30, 30)
        write_geotiff(root / f"chip{i:02d}_input.tif", images.reshape(-1, size, size),
                      crs=CRS_UTM14N, transform=transform, nodata=NODATA)
        write_geotiff(root / f"chip{i:02d}_label.tif", label, crs=CRS_UTM14N,
                      transform=transform, nodata=LABEL_NODATA)
    return root


def scene_large(path: str | Path, size: int = 2048, seed: int = 0) -> Path:
    """One big single-date 6-band scene (for tiled prediction benchmarks)."""
    rng = np.random.default_rng(seed)
    images, _ = scene(rng, size, DATES[:1], clouds=False)
    return write_geotiff(path, images[0], crs=CRS_UTM14N,
                         transform=from_origin(440_000, 3_160_000, 30, 30), nodata=NODATA)


def example_stack(path: str | Path, *, size: int = 80, frames: int = 3, seed: int = 1) -> Path:
    """A time-major ``6 x frames``-band GeoTIFF, as the predictor reads (bigger than one tile)."""
    rng = np.random.default_rng(seed)
    images, _ = scene(rng, size, DATES[:frames])
    return write_geotiff(path, images.reshape(-1, size, size), crs=CRS_UTM14N,
                         transform=from_origin(440_000, 3_160_000, 30, 30), nodata=NODATA)


def generated(root: str | None, kind: str, **kwargs: object) -> str:
    """``root`` (a new temporary folder when None), first filled with the embedded ``kind``
    (``scenes`` or ``chips``) when it holds no labels yet."""
    folder = Path(root) if root else Path(tempfile.mkdtemp(prefix="domainfm-geospatial-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.glob("*_mask.tif" if kind == "scenes" else "*_label.tif")):
        {"scenes": make_scenes, "chips": make_chips}[kind](folder, **kwargs)
    return str(folder)
