"""CSV in (one signal per row), CSV out (predicted class per row)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from domainfm.host import DomainfmError
from domainfm.io import atomic_path

from domainfm_example.data import make_waves


def read_signals(path: Path) -> torch.Tensor:
    try:
        values = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32)
    except ValueError as exc:
        raise DomainfmError(f"{path}: expected rows of comma-separated numbers ({exc})") from None
    return torch.from_numpy(values)


def build_predictor(*, batch_size: int = 64) -> Callable[..., list[Path]]:
    def run(model, source: Path, destination: Path) -> list[Path]:
        signals = read_signals(source)
        with torch.no_grad():
            classes = torch.cat([model({"signal": chunk}).argmax(-1)
                                 for chunk in signals.split(batch_size)])
        out = destination / f"{source.stem}.classes.csv"
        with atomic_path(out) as tmp:
            np.savetxt(tmp, classes.numpy()[:, None], fmt="%d", header="class", comments="")
        return [out]

    return run


def write_example(folder: Path) -> Path:
    signals, _ = make_waves(8, 32, 4, seed=1)
    path = folder / "waves.csv"
    np.savetxt(path, signals.numpy(), delimiter=",")
    return path
