"""Quick-look PNGs: a scene in true colour beside its predicted classes.

Scenes are read decimated (at most ``max_side`` pixels a side), so a quick look of a huge scene
costs no more memory than a small one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402

from domainfm.io import atomic_path  # noqa: E402


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """2-98% percentile stretch per band to [0, 1], NaN shown black."""
    out = np.zeros_like(rgb)
    for i, band in enumerate(rgb):
        finite = band[np.isfinite(band)]
        if finite.size:
            lo, hi = np.percentile(finite, [2, 98])
            out[i] = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.nan_to_num(out).transpose(1, 2, 0)


def _read(path: Path, bands: list[int], max_side: int, resampling: Resampling) -> np.ndarray:
    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / max_side
        shape = (len(bands), max(1, round(src.height / max(scale, 1))),
                 max(1, round(src.width / max(scale, 1))))
        data = src.read([b + 1 for b in bands], out_shape=shape, resampling=resampling)
        data = data.astype(np.float32)
        if src.nodata is not None and np.issubdtype(data.dtype, np.floating):
            data[data == src.nodata] = np.nan
    return data


def scene_and_prediction(source: Path, prediction: Path, rgb_bands: list[int], destination: Path,
                         max_side: int = 1024) -> Path:
    """``source`` bands ``rgb_bands`` (0-based, R, G, B) beside ``prediction``'s first band."""
    rgb = _stretch(_read(source, rgb_bands, max_side, Resampling.average))
    pred = _read(prediction, [0], max_side, Resampling.nearest)[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    axes[0].imshow(rgb)
    axes[0].set_title(source.name)
    shown = np.ma.masked_where(~np.isfinite(pred) | (pred == 255), pred)
    image = axes[1].imshow(shown, cmap="viridis", interpolation="nearest")
    axes[1].set_title(prediction.name)
    fig.colorbar(image, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    with atomic_path(destination) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return destination
