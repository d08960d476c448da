"""Accuracy of the example's classifier, from logits."""

from __future__ import annotations

from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from domainfm.records import PositiveInt


def accuracy(*, num_classes: PositiveInt) -> Metric:
    """Share of correctly classified signals; ``num_classes`` comes from the data specification."""
    return MulticlassAccuracy(num_classes=num_classes, average="micro")
