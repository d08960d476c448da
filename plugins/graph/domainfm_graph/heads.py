"""The classification head GCC fine-tunes: one linear layer on the instance embedding.

The same head serves node classification (the instance is the node's ego subgraph) and graph
classification (the instance is the whole graph): which one is the dataset's choice. Its
``num_classes`` comes from the data specification (the label file's classes); so do
``class_names`` and ``label_source``, which let a config that sets too few classes fail at once,
naming the label file, instead of deep in the loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domainfm.errors import DataError
from domainfm.records import Fraction, PositiveInt


class LinearHead(nn.Module):
    """Logits ``(B, num_classes)`` from ``features["embedding"]``; cross-entropy loss."""

    def __init__(self, embed_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(embed_dim, num_classes)

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor:
        return self.linear(self.dropout(features["embedding"]))

    def loss(self, predictions: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        target = batch["target"]
        if target.numel() and (int(target.max()) >= self.num_classes or int(target.min()) < 0):
            raise DataError(f"labels {sorted(set(target.tolist()))} are outside 0.."
                            f"{self.num_classes - 1}: the head has {self.num_classes} classes "
                            "(are these the labels the model was trained on?)")
        return F.cross_entropy(predictions, target)


def build_head(encoder: nn.Module, *, num_classes: PositiveInt, dropout: Fraction = 0.0,
               class_names: list[str] | None = None, label_source: str | None = None) -> LinearHead:
    """A linear classifier over the encoder's ``embed_dim``; the data fills every parameter but
    ``dropout`` (``class_names`` and ``label_source`` say which labels it was built for)."""
    if class_names is not None and num_classes < len(class_names):
        shown = ", ".join(class_names[:8]) + (" ..." if len(class_names) > 8 else "")
        raise DataError(f"{label_source or 'the labels'}: the labels name {len(class_names)} "
                        f"classes ({shown}) but head.params.num_classes is {num_classes}; leave "
                        "num_classes unset to take it from the data")
    return LinearHead(int(encoder.embed_dim), num_classes, dropout)
