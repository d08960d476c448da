"""Toy waveforms: noisy sines whose frequency is the class, generated from a seed or read from
a CSV (see :mod:`domainfm_example.io`).

Signals are z-scored with the mean and standard deviation of the training split; those
statistics travel with a trained model in its data specification, so a predictor normalises
new files exactly as training did, with the training data gone.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from domainfm.errors import DataError
from domainfm.records import BadInput, PositiveInt
from domainfm.spec import DataSpec

from domainfm_example.io import read_waves, write_waves


def make_waves(n: int, length: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` signals of ``length`` samples; class ``k`` oscillates ``k + 1`` times."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    t = torch.linspace(0, 1, length)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    signal = torch.sin(2 * math.pi * (labels[:, None] + 1) * t + phase)
    return signal + 0.1 * torch.randn(n, length, generator=g), labels


class Waves(Dataset):
    def __init__(self, signals: torch.Tensor, labels: torch.Tensor) -> None:
        self.signals, self.labels = signals, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"signal": self.signals[i], "target": self.labels[i]}


class WavesDataModule(pl.LightningDataModule):
    """Train (70%), validation (15%) and test (15%) splits of disjoint signals."""

    def __init__(self, *, path: str | None = None, num_samples: PositiveInt = 256,
                 length: PositiveInt = 32, num_classes: PositiveInt = 4,
                 batch_size: PositiveInt = 16, seed: int = 0) -> None:
        super().__init__()
        if length % 4:
            raise DataError(f"data.params.length must be a multiple of 4, got {length}")
        self.path = path
        self.num_samples, self.length, self.num_classes = num_samples, length, num_classes
        self.batch_size, self.seed = batch_size, seed
        self.splits: dict[str, Waves] = {}

    def setup(self, stage: str | None = None) -> None:
        """Read (or generate) the signals and check them; called before anything is written."""
        if self.splits:
            return
        if self.path is None:
            signals, labels = make_waves(self.num_samples, self.length, self.num_classes, self.seed)
        else:
            signals, labels = read_waves(Path(self.path))
            if labels.max() >= self.num_classes:
                raise DataError(f"{self.path}: labels go up to {int(labels.max())} but "
                                f"num_classes is {self.num_classes} (labels 0..{self.num_classes - 1})")
            if signals.shape[1] % 4:
                raise DataError(f"{self.path}: signals have {signals.shape[1]} samples; expected "
                                "a multiple of 4")
        if len(labels) < 4:
            raise DataError(f"{self.path or 'the generated waves'}: {len(labels)} signals are "
                            "too few for train, validation and test splits (at least 4)")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        cut = [max(1, int(len(labels) * f)) for f in (0.7, 0.85)]
        cut[1] = min(max(cut[1], cut[0] + 1), len(labels) - 1)
        parts = {"train": order[: cut[0]], "val": order[cut[0]: cut[1]], "test": order[cut[1]:]}
        train = signals[parts["train"]]
        self.mean, self.std = float(train.mean()), float(train.std().clamp_min(1e-6))
        self.keys = {split: index.tolist() for split, index in parts.items()}
        self.splits = {split: Waves((signals[index] - self.mean) / self.std, labels[index])
                       for split, index in parts.items()}

    def data_spec(self) -> DataSpec:
        return DataSpec(inputs=("signal",), num_classes=self.num_classes,
                        normalization={"mean": self.mean, "std": self.std},
                        task={"length": self.splits["train"].signals.shape[1]})

    def split_keys(self, split: str) -> list[int]:
        """Row numbers of the signals in ``split``."""
        return self.keys[split]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True,
                          drop_last=len(self.splits["train"]) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=self.batch_size)


def write_files(folder: Path) -> dict[str, str]:
    """A small labelled CSV of waves (the harness trains on it, then deletes it)."""
    signals, labels = make_waves(64, 32, 4, seed=2)
    return {"path": str(write_waves(Path(folder) / "waves.csv", signals, labels))}


def bad_inputs(folder: Path) -> list[BadInput]:
    """Broken CSVs of every kind a user sends: each must be one clear error."""
    folder = Path(folder)
    signals, labels = make_waves(16, 32, 4, seed=3)
    good = write_waves(folder / "good.csv", signals, labels).read_text().splitlines()
    cases = {
        "missing file": None,
        "not numbers": "label,a,b\n" + "\n".join(good),
        "empty": "",
        "NaN values": "\n".join(good[:3] + ["1," + ",".join(["nan"] * 32)] + good[3:]),
        "ragged rows": "\n".join(good[:5] + [good[5] + ",0.5,0.25"] + good[6:]),
        "label out of range": "\n".join(good + ["7," + ",".join(["0.1"] * 32)] * 2),
        "length not a multiple of 4": "\n".join(",".join(r.split(",")[:-2]) for r in good),
        "too few signals": "\n".join(good[:2]),
    }
    out = []
    for name, text in cases.items():
        path = folder / (name.replace(" ", "_") + ".csv")
        if text is not None:
            path.write_text(text + ("\n" if text else ""))
        out.append(BadInput(name, expect=path.name, params={"path": str(path)}))
    (folder / "good.csv").unlink()
    return out
