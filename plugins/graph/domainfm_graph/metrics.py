"""Micro-F1 and accuracy for single-label classification, from torchmetrics' stat scores.

Built without ``num_classes``: the number of classes is read from the logits. Targets below
zero (unlabelled nodes) are ignored. With one label per item micro-F1 equals accuracy; both are
reported because papers name one or the other (GCC: micro-F1 for nodes, accuracy for graphs).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_stat_scores


class _MicroScores(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, target: torch.Tensor) -> None:
        keep = target >= 0
        predictions, target = predictions[keep], target[keep]
        if target.numel() == 0:
            return
        tp, fp, _, fn, _ = multiclass_stat_scores(
            predictions.detach(), target, num_classes=predictions.shape[-1], average="micro")
        self.tp += tp.long()
        self.fp += fp.long()
        self.fn += fn.long()


class MicroF1(_MicroScores):
    def compute(self) -> torch.Tensor:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn).clamp(min=1)


class Accuracy(_MicroScores):
    def compute(self) -> torch.Tensor:
        return self.tp / (self.tp + self.fn).clamp(min=1)


def build_micro_f1() -> MicroF1:
    """Micro-averaged F1 over classes (GCC's node classification score)."""
    return MicroF1()


def build_accuracy() -> Accuracy:
    """Fraction of items classified right (GCC's graph classification score)."""
    return Accuracy()
