"""Toy waveforms: noisy sines whose frequency is the class, generated from a seed."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset


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
    """Train/val/test splits of generated waves."""

    def __init__(self, *, num_samples: int = 256, length: int = 32, num_classes: int = 4,
                 batch_size: int = 16, seed: int = 0) -> None:
        super().__init__()
        if length % 4:
            raise ValueError(f"data.params.length must be a multiple of 4, got {length}")
        self.num_samples, self.length, self.num_classes = num_samples, length, num_classes
        self.batch_size, self.seed = batch_size, seed

    def setup(self, stage: str | None = None) -> None:
        signals, labels = make_waves(self.num_samples, self.length, self.num_classes, self.seed)
        cut = [int(self.num_samples * f) for f in (0.7, 0.85)]
        self.train = Waves(signals[: cut[0]], labels[: cut[0]])
        self.val = Waves(signals[cut[0]: cut[1]], labels[cut[0]: cut[1]])
        self.test = Waves(signals[cut[1]:], labels[cut[1]:])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=self.batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
