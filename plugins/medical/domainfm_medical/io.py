"""NIfTI reading and writing with errors that name the case and the file.

Everything the plugin reads from disk goes through :func:`read_volume`, so a truncated file, a
4D series, NaNs or a file that is not NIfTI are reported the same way everywhere (datasets and
predictors); everything it writes goes through :func:`write_volume`, which keeps the reference
affine and writes atomically.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from domainfm.errors import DataError
from domainfm.io import atomic_path

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def one_line(text: object) -> str:
    """A library's message on one line (the CLI prints errors as one line)."""
    return " ".join(str(text).split())


class BadCaseError(DataError):
    """A case whose files cannot be used; the message names the case, file and problem."""

    def __init__(self, case: str, path: str | Path | None, problem: str, kind: str = "file") -> None:
        self.case, self.path, self.problem = case, None if path is None else str(path), one_line(problem)
        where = f"case {case!r}" + (f", {kind} {str(path)!r}" if path is not None else "")
        super().__init__(f"{where}: {self.problem}")


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_volume(path: str | Path, case: str = "?") -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D NIfTI volume as float32 plus its 4x4 affine, validating it fully.

    A 4D file with a single volume is squeezed; anything else that is not 3D is an error, as are
    unreadable/truncated files and non-finite voxels (they would poison the z-score silently).
    """
    path = Path(path)
    if not path.is_file():
        raise BadCaseError(case, path, "file does not exist")
    if not is_nifti(path):
        raise BadCaseError(case, path, "expected a NIfTI file ending in .nii or .nii.gz")
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for corrupt files
        raise BadCaseError(case, path, f"cannot read NIfTI ({type(exc).__name__}: {exc}); "
                           "the file may be truncated or not NIfTI") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BadCaseError(case, path, f"expected a 3D volume, got shape {tuple(data.shape)}")
    bad = ~np.isfinite(data)
    if bad.any():
        n = int(bad.sum())
        raise BadCaseError(case, path, f"{n} voxel{'s are' if n > 1 else ' is'} NaN or infinite")
    return data, np.asarray(image.affine, dtype=np.float64)


def write_volume(array: np.ndarray, affine: np.ndarray, path: str | Path,
                 dtype: type | np.dtype | None = None) -> Path:
    """Write ``array`` (X, Y, Z) as NIfTI with ``affine``, atomically; returns the path."""
    path = Path(path)
    if not is_nifti(path):
        raise DataError(f"output {str(path)!r} must end in .nii or .nii.gz")
    array = np.asarray(array if dtype is None else np.asarray(array).astype(dtype))
    image = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    return path
