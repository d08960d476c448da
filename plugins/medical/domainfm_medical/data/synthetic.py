"""The embedded dataset: small synthetic brains with a lesion, written as real NIfTI files.

Each case is an ellipsoidal "brain" (white matter, grey matter, ventricles) with one tumour in
BraTS label convention: necrotic core 1, oedema 2, enhancing rim 4. The four modalities see the
tissues with different contrasts, as MRI sequences do (enhancement only on t1ce, oedema bright on
t2/flair, fluid dark on flair), so reconstructing one modality from the others is a real task.
The case label is the grade: 1 (high) when the tumour enhances, 0 (low) when it does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from domainfm.io import atomic_write_text
from domainfm_medical.data.cases import MODALITIES
from domainfm_medical.io import write_volume

# intensity of (background, csf, grey, white, oedema, necrosis, enhancing) per modality
CONTRAST = {
    "t1":    (0.0, 0.25, 0.55, 0.80, 0.45, 0.20, 0.50),
    "t1ce":  (0.0, 0.25, 0.55, 0.80, 0.45, 0.20, 1.00),
    "t2":    (0.0, 1.00, 0.65, 0.45, 0.90, 0.95, 0.60),
    "flair": (0.0, 0.10, 0.60, 0.45, 1.00, 0.55, 0.70),
}


def make_case(rng: np.random.Generator, size: int = 32) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """One case: ``{modality: volume}``, the BraTS-labelled mask and the grade label."""
    grid = (np.indices((size,) * 3).astype(np.float32) + 0.5) / size * 2 - 1  # [-1, 1]
    radii = rng.uniform(0.72, 0.9, size=3)
    shift = rng.uniform(-0.04, 0.04, size=3)
    r = np.sqrt((((grid - shift[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0))
    tissue = np.zeros((size,) * 3, dtype=np.int64)  # 0 background
    tissue[r < 1.0] = 2                               # grey matter shell
    tissue[r < 0.75] = 3                              # white matter
    ventricle = np.sqrt(((grid[0] / 0.12) ** 2) + ((grid[1] / 0.25) ** 2) + ((grid[2] / 0.18) ** 2))
    tissue[ventricle < 1.0] = 1                       # csf

    grade = int(rng.integers(0, 2))
    centre = rng.uniform(-0.35, 0.35, size=3)
    while np.linalg.norm(centre[:2] / [0.12, 0.25]) < 1.5:  # keep the tumour off the ventricles
        centre = rng.uniform(-0.35, 0.35, size=3)
    d = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
    r_core = rng.uniform(0.2, 0.3)
    r_edema = r_core + rng.uniform(0.12, 0.2)
    mask = np.zeros((size,) * 3, dtype=np.int16)
    mask[(d < r_edema) & (tissue > 0)] = 2
    if grade:
        mask[d < r_core] = 4
        mask[d < r_core * 0.6] = 1
    else:
        mask[d < r_core * 0.8] = 1
    region = tissue.copy()
    region[mask == 2] = 4
    region[mask == 1] = 5
    region[mask == 4] = 6

    brain = tissue > 0
    volumes = {}
    for modality in MODALITIES:
        values = np.asarray(CONTRAST[modality], dtype=np.float32)[region]
        bias = 1.0 + 0.1 * gaussian_filter(rng.standard_normal((size,) * 3), 6) * 10
        noisy = values * bias + 0.03 * rng.standard_normal((size,) * 3)
        volumes[modality] = np.where(brain, gaussian_filter(noisy, 0.6), 0.0).astype(np.float32) * 1000
    return volumes, mask, grade


AFFINE = np.array([[1.0, 0, 0, -10], [0, 1.0, 0, -12], [0, 0, 1.0, 5], [0, 0, 0, 1]])


def write_case(root: str | Path, name: str, seed: int, modalities: Sequence[str] = MODALITIES,
               size: int = 32, mask: bool = True, affine: np.ndarray = AFFINE) -> Path:
    """One case in a BraTS-style folder (``<name>/<name>_<modality>.nii.gz``, ``<name>_seg``)."""
    volumes, seg, _ = make_case(np.random.default_rng(seed), size)
    folder = Path(root) / name
    for m in modalities:
        write_volume(volumes[m], affine, folder / f"{name}_{m}.nii.gz")
    if mask:
        write_volume(seg, affine, folder / f"{name}_seg.nii.gz", dtype=np.int16)
    return folder


def generate(root: str | Path, *, num_cases: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Write ``num_cases`` cases under ``root/<case>/{t1,t1ce,t2,flair,seg}.nii.gz`` plus a
    ``manifest.csv`` (case, one column per modality, mask, label); returns the manifest path.

    Files already there from the same parameters are reused, so calling it twice is cheap.
    """
    root = Path(root)
    manifest = root / "manifest.csv"
    stamp = f"# synthetic_brains num_cases={num_cases} size={size} seed={seed}\n"
    if manifest.is_file() and manifest.read_text().startswith(stamp):
        return manifest
    rng = np.random.default_rng(seed)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -size / 2
    rows = ["case," + ",".join(MODALITIES) + ",mask,label"]
    for i in range(num_cases):
        case = f"brain_{i:03d}"
        volumes, mask, grade = make_case(rng, size)
        for modality, volume in volumes.items():
            write_volume(volume, affine, root / case / f"{modality}.nii.gz")
        write_volume(mask, affine, root / case / "seg.nii.gz", dtype=np.int16)
        rows.append(",".join([case, *(f"{case}/{m}.nii.gz" for m in MODALITIES),
                              f"{case}/seg.nii.gz", str(grade)]))
    atomic_write_text(manifest, stamp + "\n".join(rows) + "\n")
    return manifest
