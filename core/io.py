"""Atomic file writing, and the host's weights reader for plugins.

Writing goes to a temporary name in the same folder, then renames, so a crash (or a killed run)
never leaves a half-written checkpoint, export or output: readers see either the old file or
the complete new one. Plugins use these for their outputs.

:func:`read_weights` and :func:`load_weights` give plugins the host's one checkpoint reader
and its strict loader (:mod:`domainfm.weights`), for the rare model whose architecture must be
read from a checkpoint's tensors before it can be built; everything else names the file as a
component's ``weights`` and lets the host load it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    Use it with writers that insist on a filename (nibabel, rasterio, safetensors)::

        with atomic_path(out / "seg.nii.gz") as tmp:
            nib.save(image, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffixes so libraries that pick a format by extension still do
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes) or ".tmp",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def read_weights(source: str | os.PathLike[str]) -> Any:
    """A :class:`domainfm.weights.Checkpoint` (``tensors``; a Hugging Face folder's ``config``)
    read by the host's one reader; errors name the path."""
    from domainfm.weights import read_checkpoint

    return read_checkpoint(source)


def load_weights(module: Any, tensors: Any, where: str) -> None:
    """Load ``tensors`` into ``module`` strictly, failing with the host's key-difference error
    (every missing, unexpected and mis-shaped key) naming ``where``."""
    from domainfm.weights import load_strict

    load_strict(module, tensors, where)
