"""The example's file format: a CSV with one signal per row, optionally a ``label`` column first.

Every reader error names the file and what was expected, so a broken file is one line for the
user, never a traceback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from domainfm.errors import DataError
from domainfm.io import atomic_path


def read_waves(path: Path, labelled: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(signals (N, L), labels (N,) or None)`` from a CSV; the first column is the label when
    ``labelled``. Fails on a missing, empty, ragged or non-numeric file and on NaN values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a CSV of signals, one per row)")
    try:
        with warnings.catch_warnings():  # an empty file is reported below, not warned about
            warnings.simplefilter("ignore")
            values = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: expected rows of comma-separated numbers of equal length "
                        f"({str(exc).splitlines()[0]})") from None
    if values.size == 0:
        raise DataError(f"{path}: the file holds no signals")
    if not np.isfinite(values).all():
        row = int(np.argwhere(~np.isfinite(values))[0][0])
        raise DataError(f"{path}: row {row + 1} holds NaN or infinite values")
    if not labelled:
        return torch.from_numpy(values.astype(np.float32)), None
    labels = values[:, 0]
    if not np.array_equal(labels, np.round(labels)) or (labels < 0).any():
        raise DataError(f"{path}: the first column must hold class labels (integers >= 0)")
    return torch.from_numpy(values[:, 1:].astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def write_waves(path: Path, signals: torch.Tensor, labels: torch.Tensor | None = None) -> Path:
    """Write signals (and labels as the first column), atomically."""
    rows = signals.numpy()
    if labels is not None:
        rows = np.concatenate([labels.numpy()[:, None].astype(np.float64), rows], axis=1)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, rows, delimiter=",", fmt="%.7g")
    return Path(path)


def check_length(path: Path | str, length: int, patch: int) -> None:
    """Signals must split into whole patches of the encoder."""
    if length % patch:
        raise DataError(f"{path}: signals of {length} samples do not split into patches of "
                        f"{patch}; expected a multiple of {patch}")
