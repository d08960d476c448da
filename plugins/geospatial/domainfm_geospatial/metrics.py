"""Segmentation metrics on raw logits, macro-averaged where the Prithvi papers report macro.

torchgeo's trainers default to micro-averaged IoU, which flatters the majority class; here mIoU
and F1 are macro (mean over classes), pixel accuracy is micro (fraction of pixels), and a
per-class IoU reports one class (e.g. water) as a scalar. ``num_classes`` and ``ignore_index``
come from the data specification (or the head), never from a default here.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from domainfm.errors import ConfigError
from domainfm.records import NonNegativeInt, PositiveInt


class ClassIoU(MulticlassJaccardIndex):
    """IoU of one class, from the same confusion matrix as mIoU."""

    def __init__(self, *, class_index: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(average="none", **kwargs)
        self.class_index = class_index

    def compute(self) -> torch.Tensor:
        return super().compute()[self.class_index]


def build_miou(*, num_classes: PositiveInt, ignore_index: int | None = None) -> MulticlassJaccardIndex:
    return MulticlassJaccardIndex(num_classes=num_classes, average="macro", ignore_index=ignore_index)


def build_class_iou(*, num_classes: PositiveInt, class_index: NonNegativeInt = 1,
                    ignore_index: int | None = None) -> ClassIoU:
    """IoU of ``class_index`` (default 1: water in the embedded data)."""
    if not 0 <= class_index < num_classes:
        raise ConfigError(f"class_index {class_index} is outside 0..{num_classes - 1}")
    return ClassIoU(num_classes=num_classes, class_index=class_index, ignore_index=ignore_index)


def build_f1(*, num_classes: PositiveInt, ignore_index: int | None = None) -> MulticlassF1Score:
    return MulticlassF1Score(num_classes=num_classes, average="macro", ignore_index=ignore_index)


def build_pixel_accuracy(*, num_classes: PositiveInt,
                         ignore_index: int | None = None) -> MulticlassAccuracy:
    return MulticlassAccuracy(num_classes=num_classes, average="micro", ignore_index=ignore_index)


class MaskedRMSE(Metric):
    """Root mean squared error over pixels whose target is finite (NaN marks nodata)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("sum_sq", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, target: torch.Tensor) -> None:
        valid = torch.isfinite(target)
        diff = predictions.double()[valid] - target.double()[valid]
        self.sum_sq += diff.pow(2).sum()
        self.count += valid.sum()

    def compute(self) -> torch.Tensor:
        return (self.sum_sq / self.count.clamp(min=1)).sqrt().float()


def build_rmse() -> MaskedRMSE:
    return MaskedRMSE()
