"""The classification head GCC fine-tunes: one linear layer on the instance embedding.

The same head serves node classification (the instance is the node's ego subgraph) and graph
classification (the instance is the whole graph): which one is the dataset's choice.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Module):
    """Logits ``(B, num_classes)`` from ``features["embedding"]``; cross-entropy loss."""

    def __init__(self, embed_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(embed_dim, num_classes)

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor:
        return self.linear(self.dropout(features["embedding"]))

    def loss(self, predictions: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(predictions, batch["target"])


def build_head(encoder: nn.Module, *, num_classes: int = 4, dropout: float = 0.0) -> LinearHead:
    """A linear classifier over the encoder's ``embed_dim``."""
    return LinearHead(int(encoder.embed_dim), num_classes, dropout)
