"""Linear classification from the pooled embedding: the example's task head."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domainfm.errors import DataError
from domainfm.records import PositiveInt


class ClassifierHead(nn.Module):
    """Logits ``(B, num_classes)``; ``num_classes`` comes from the data specification."""

    def __init__(self, encoder: nn.Module, *, num_classes: PositiveInt) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.linear = nn.Linear(encoder.embed_dim, num_classes)

    def forward(self, features: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        return self.linear(features["embedding"])

    def loss(self, predictions: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        target = batch["target"]
        if target.numel() and (target.max() >= self.num_classes or target.min() < 0):
            raise DataError(f"labels {sorted(set(target.tolist()))} are outside 0.."
                            f"{self.num_classes - 1} (the head has {self.num_classes} classes)")
        return F.cross_entropy(predictions, target)
