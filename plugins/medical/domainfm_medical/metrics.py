"""Segmentation and classification metrics, updated with raw head outputs (logits).

Dice and HD95 come from MONAI's ``compute_dice``/``compute_hausdorff_distance``, accumulated as
torchmetrics sums (so they reduce correctly across DDP ranks). Empty structures follow the
BraTS convention instead of MONAI's NaN, which averages would silently drop:

* Dice: both prediction and reference empty -> 1; only one empty -> 0.
* HD95: both empty -> 0; a structure the prediction misses entirely (or predicts where there is
  none) -> the worst possible distance, the diagonal of the volume in mm
  (``sqrt(X^2 + Y^2 + Z^2) * spacing``). That case therefore counts against the mean.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_hausdorff_distance
from torchmetrics import Metric
from torchmetrics.classification import BinaryAUROC, MulticlassAccuracy, MulticlassAUROC

from domainfm.records import PositiveFloat, PositiveInt


def binarize(logits: torch.Tensor, target: torch.Tensor, activation: str,
             include_background: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, reference) as one-hot/multi-label float volumes (B, C, X, Y, Z)."""
    if activation == "sigmoid":
        pred, ref = (logits > 0).float(), target.float()
    else:
        c = logits.shape[1]
        pred = F.one_hot(logits.argmax(1), c).movedim(-1, 1).float()
        ref = F.one_hot(target.long().reshape(pred.shape[0], *pred.shape[2:]), c).movedim(-1, 1).float()
        if not include_background:
            pred, ref = pred[:, 1:], ref[:, 1:]
    return pred, ref


class _PerClassMean(Metric):
    """Mean over cases of a per-(case, class) score; ``compute`` gives the class mean, or every
    class with ``reduction="none"``."""

    full_state_update = False

    def __init__(self, *, num_classes: int, activation: str, include_background: bool,
                 reduction: str) -> None:
        super().__init__()
        self.activation, self.include_background, self.reduction = activation, include_background, reduction
        n = num_classes - (0 if activation == "sigmoid" or include_background else 1)
        self.add_state("total", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def score(self, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, predictions: torch.Tensor, target: torch.Tensor) -> None:
        pred, ref = binarize(predictions.detach(), target, self.activation, self.include_background)
        values = self.score(pred, ref)  # (B, C)
        self.total += values.sum(0).to(self.total)
        self.count += values.shape[0]

    def compute(self) -> torch.Tensor:
        per_class = (self.total / self.count.clamp_min(1)).float()
        return per_class if self.reduction == "none" else per_class.mean()


class Dice(_PerClassMean):
    def score(self, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return compute_dice(pred, ref, include_background=True, ignore_empty=False).nan_to_num(0.0)


class HD95(_PerClassMean):
    def __init__(self, *, spacing: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spacing = spacing

    def score(self, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        worst = float(torch.tensor(pred.shape[2:], dtype=torch.float64).norm()) * self.spacing
        pred_empty, ref_empty = pred.flatten(2).sum(-1) == 0, ref.flatten(2).sum(-1) == 0
        both = ~pred_empty & ~ref_empty
        values = torch.zeros(pred.shape[:2], dtype=torch.float64)
        if bool(both.any()):
            raw = compute_hausdorff_distance(pred, ref, include_background=True, percentile=95,
                                             spacing=self.spacing).double().cpu()
            values = torch.where(both.cpu(), raw.nan_to_num(worst, posinf=worst), values)
        values = torch.where((pred_empty ^ ref_empty).cpu(), torch.full_like(values, worst), values)
        return values


Activation = Literal["sigmoid", "softmax"]
Reduction = Literal["mean", "none"]


def build_dice(*, num_classes: PositiveInt, activation: Activation, include_background: bool = False,
               reduction: Reduction = "mean") -> Dice:
    """``medical.dice``: Dice per class (TC/WT/ET for sigmoid), averaged unless reduction='none'.
    ``num_classes`` and ``activation`` come from the data specification (or the head)."""
    return Dice(num_classes=num_classes, activation=activation,
                include_background=include_background, reduction=reduction)


def build_hd95(*, num_classes: PositiveInt, activation: Activation, include_background: bool = False,
               spacing: PositiveFloat = 1.0, reduction: Reduction = "mean") -> HD95:
    """``medical.hd95``: 95th-percentile Hausdorff distance in mm (``spacing``: the data's voxel
    size); a missed structure scores the volume diagonal."""
    return HD95(num_classes=num_classes, activation=activation, include_background=include_background,
                reduction=reduction, spacing=spacing)


class LogitBinaryAUROC(BinaryAUROC):
    """ROC-AUC from two-class logits (B, 2) or one logit (B,)/(B, 1)."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        score = preds.softmax(-1)[:, 1] if preds.ndim == 2 and preds.shape[1] == 2 else preds.reshape(-1).sigmoid()
        super().update(score.detach(), target.long())


class LogitMulticlassAUROC(MulticlassAUROC):
    """One-vs-rest macro ROC-AUC from logits (B, C)."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds.detach().softmax(-1), target.long())


def build_auroc(*, num_classes: PositiveInt) -> Metric:
    """``medical.auroc``: ROC-AUC of case classification (binary, or macro one-vs-rest)."""
    return LogitBinaryAUROC() if num_classes == 2 else LogitMulticlassAUROC(num_classes=num_classes)


def build_accuracy(*, num_classes: PositiveInt) -> Metric:
    """``medical.accuracy``: fraction of cases whose arg-max class is right."""
    return MulticlassAccuracy(num_classes=num_classes, average="micro")
