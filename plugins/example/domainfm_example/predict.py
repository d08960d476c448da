"""CSV in (one signal per row), CSV out (predicted class per row).

Signals are normalised with the training split's statistics from the model's data
specification, so the training data is never read again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domainfm.io import atomic_path
from domainfm.records import BadInput, PositiveInt

from domainfm_example.data import make_waves
from domainfm_example.io import check_length, read_waves, write_waves


def build_predictor(*, batch_size: PositiveInt = 64) -> Callable[..., list[Path]]:
    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        signals, _ = read_waves(source, labelled=False)
        check_length(source, signals.shape[1], model.encoder.patch)
        stats = model.spec.data.normalization
        signals = (signals - stats["mean"]) / stats["std"]
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
    return write_waves(Path(folder) / "waves.csv", signals)


def bad_inputs(folder: Path) -> list[BadInput]:
    """Inputs a predictor must refuse with one line naming the file."""
    folder = Path(folder)
    signals, _ = make_waves(4, 30, 4, seed=1)
    cases = {"odd length.csv": write_waves(folder / "odd_length.csv", signals),
             "text.csv": folder / "text.csv", "missing.csv": folder / "missing.csv"}
    cases["text.csv"].write_text("a,b,c\n")
    return [BadInput(name.removesuffix(".csv"), expect=path.name, source=str(path))
            for name, path in cases.items()]
