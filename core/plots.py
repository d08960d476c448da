"""Pictures of a run: the loss curves a person looks at first."""

from __future__ import annotations

import csv
from pathlib import Path

from domainfm.io import atomic_path


def read_history(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged series of a Lightning ``metrics.csv`` as ``name -> [(step, value)]``."""
    history: dict[str, list[tuple[int, float]]] = {}
    if not path.is_file():
        return history
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in (None, ""):
                    history.setdefault(key, []).append((step, float(value)))
    return history


def plot_loss_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path | None:
    """Training and validation loss against step, as a PNG; None when nothing was logged."""
    series = {k: v for k, v in history.items() if k.endswith("loss") or k.endswith("loss_step")}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, points in sorted(series.items()):
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(path.parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
