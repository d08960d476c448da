"""Dice, HD95 (with the missed-structure convention), ROC-AUC and accuracy on known inputs."""

from __future__ import annotations

import math

import pytest
import torch

from domainfm_medical.metrics import build_accuracy, build_auroc, build_dice, build_hd95


def logits_from(mask: torch.Tensor) -> torch.Tensor:
    return mask.float() * 20 - 10


def cube(lo: int, hi: int, size: int = 16) -> torch.Tensor:
    v = torch.zeros(size, size, size, dtype=torch.bool)
    v[lo:hi, lo:hi, lo:hi] = True
    return v


def test_dice_per_class_and_mean() -> None:
    ref = torch.stack([cube(2, 6), cube(2, 6), cube(8, 12)])[None]       # (1, 3, 16^3)
    pred = torch.stack([cube(2, 6), cube(4, 8), torch.zeros(16, 16, 16, dtype=bool)])[None]
    per_class = build_dice(num_classes=3, activation="sigmoid", reduction="none")
    per_class.update(logits_from(pred), ref)
    overlap = 2 * 2 * 2
    expected = torch.tensor([1.0, 2 * overlap / (64 + 64), 0.0])
    torch.testing.assert_close(per_class.compute(), expected)
    mean = build_dice(num_classes=3, activation="sigmoid")
    mean.update(logits_from(pred), ref)
    torch.testing.assert_close(mean.compute(), expected.mean())


def test_dice_empty_reference_and_prediction_is_perfect() -> None:
    metric = build_dice(num_classes=1, activation="sigmoid")
    empty = torch.zeros(1, 1, 8, 8, 8, dtype=torch.bool)
    metric.update(logits_from(empty), empty)
    assert metric.compute().item() == 1.0


def test_hd95_missed_structure_counts_as_worst_distance() -> None:
    ref = torch.stack([cube(2, 6), cube(2, 6), torch.zeros(16, 16, 16, dtype=torch.bool)])[None]
    pred = torch.stack([cube(2, 6), torch.zeros(16, 16, 16, dtype=torch.bool),
                        torch.zeros(16, 16, 16, dtype=torch.bool)])[None]
    metric = build_hd95(num_classes=3, activation="sigmoid", spacing=1.5, reduction="none")
    metric.update(logits_from(pred), ref)
    worst = math.sqrt(3 * 16**2) * 1.5
    hit, missed, both_empty = metric.compute().tolist()
    assert hit == 0.0 and missed == pytest.approx(worst) and both_empty == 0.0
    # a missed case stays in the mean instead of vanishing as MONAI's NaN would
    mean = build_hd95(num_classes=3, activation="sigmoid", spacing=1.5)
    mean.update(logits_from(pred), ref)
    assert mean.compute().item() == pytest.approx(worst / 3)


def test_hd95_shifted_cube_distance() -> None:
    ref = cube(4, 8)[None, None]
    pred = torch.zeros_like(ref)
    pred[..., 6:10, 4:8, 4:8] = True  # shifted by 2 voxels along x
    metric = build_hd95(num_classes=1, activation="sigmoid")
    metric.update(logits_from(pred), ref)
    assert metric.compute().item() == pytest.approx(2.0)


def test_softmax_segmentation_excludes_background() -> None:
    target = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    target[..., :4, :, :] = 2
    logits = torch.zeros(1, 3, 8, 8, 8)
    logits[:, 2, :4] = 5
    logits[:, 0, 4:] = 5
    metric = build_dice(num_classes=3, activation="softmax", reduction="none")
    metric.update(logits, target)
    torch.testing.assert_close(metric.compute(), torch.tensor([1.0, 1.0]))  # class 1 absent in both


def test_auroc_and_accuracy_from_logits() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0], [0.0, 1.0], [-1.0, 3.0]])
    target = torch.tensor([0, 1, 0, 1])
    auroc, acc = build_auroc(num_classes=2), build_accuracy(num_classes=2)
    auroc.update(logits, target)
    acc.update(logits, target)
    assert auroc.compute().item() == pytest.approx(0.75)
    assert acc.compute().item() == pytest.approx(0.5)
    multi = build_auroc(num_classes=3)
    multi.update(torch.eye(3) * 4, torch.arange(3))
    assert multi.compute().item() == pytest.approx(1.0)
