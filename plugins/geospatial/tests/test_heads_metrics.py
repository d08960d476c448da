import pytest
import torch

from domainfm.errors import DomainfmError
from domainfm_geospatial.encoder import build_prithvi
from domainfm_geospatial.heads import build_classification, build_regression, build_segmentation
from domainfm_geospatial.metrics import (
    build_class_iou, build_f1, build_miou, build_pixel_accuracy, build_rmse,
)


def _batch(t=3, target=None):
    torch.manual_seed(0)
    return {"image": torch.randn(2, 6, t, 32, 32), "target": target}


@pytest.mark.parametrize("frames", [1, 3])
def test_segmentation_single_and_multi_temporal(frames):
    enc = build_prithvi("tiny")
    head = build_segmentation(enc, num_classes=3, num_frames=frames, ignore_index=-1)
    target = torch.randint(0, 3, (2, 32, 32))
    target[0, :4] = -1
    batch = _batch(frames, target)
    logits = head(enc(batch), batch)
    assert logits.shape == (2, 3, 32, 32)
    loss = head.loss(logits, batch)
    ignored = torch.nn.functional.cross_entropy(logits, target, ignore_index=-1)
    assert loss.item() == pytest.approx(ignored.item())
    assert head.decoder.layers == [0, 1]  # both blocks of the tiny encoder feed the neck


def test_segmentation_checks_frames_and_labels():
    enc = build_prithvi("tiny")
    head = build_segmentation(enc, num_classes=2, ignore_index=-1)  # the encoder's 3 frames
    batch = _batch(1, torch.zeros(2, 32, 32, dtype=torch.long))
    with pytest.raises(DomainfmError, match="built for 3 frames but the input has 1"):
        head(enc(batch), batch)
    batch = _batch(3, torch.full((2, 32, 32), 5))
    with pytest.raises(DomainfmError, match=r"label values \[5\] are outside 0..1"):
        head.loss(head(enc(batch), batch), batch)
    all_ignored = _batch(3, torch.full((2, 32, 32), -1))
    assert head.loss(head(enc(all_ignored), all_ignored), all_ignored).item() == 0.0


def test_regression_ignores_nan_targets_and_classification_pools():
    enc = build_prithvi("tiny")
    target = torch.rand(2, 32, 32)
    target[:, :8] = float("nan")
    batch = _batch(3, target)
    reg = build_regression(enc)
    pred = reg(enc(batch), batch)
    assert pred.shape == (2, 32, 32)
    expected = (pred[:, 8:] - target[:, 8:]).pow(2).mean()
    assert reg.loss(pred, batch).item() == pytest.approx(expected.item(), rel=1e-5)
    cls = build_classification(enc, num_classes=4)
    batch = _batch(3, torch.tensor([1, 3]))
    assert cls(enc(batch), batch).shape == (2, 4)


def test_miou_is_macro_and_pixel_accuracy_is_micro():
    # 90 background pixels all right, 10 water pixels of which 5 found
    target = torch.zeros(100, dtype=torch.long)
    target[:10] = 1
    pred = torch.zeros(100, dtype=torch.long)
    pred[:5] = 1
    logits = torch.nn.functional.one_hot(pred, 2).float().T[None]  # (1, 2, 100)
    target = target[None]
    scores = {}
    for name, build in [("miou", build_miou), ("acc", build_pixel_accuracy), ("f1", build_f1),
                        ("water", build_class_iou)]:
        metric = build(num_classes=2, ignore_index=-1)
        metric.update(logits, target)
        scores[name] = metric.compute().item()
    assert scores["water"] == pytest.approx(0.5)
    assert scores["miou"] == pytest.approx((90 / 95 + 0.5) / 2)  # micro would give 0.9...
    assert scores["acc"] == pytest.approx(0.95)
    assert scores["f1"] == pytest.approx((2 * 90 / (2 * 90 + 5) + 2 * 5 / (2 * 5 + 5)) / 2)


def test_metrics_skip_ignored_pixels_and_rmse_skips_nan():
    metric = build_miou(num_classes=2, ignore_index=-1)
    logits = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])  # (1, K=2, 2 pixels): classes 0 then 1
    metric.update(logits, torch.tensor([[0, -1]]))
    # the wrong class-1 prediction sits on an ignored pixel: it counts for nothing, and a class
    # absent from both predictions and labels does not enter the macro average
    assert metric.compute().item() == pytest.approx(1.0)
    metric.reset()
    metric.update(logits, torch.tensor([[0, 0]]))
    assert metric.compute().item() == pytest.approx((0.5 + 0.0) / 2)
    rmse = build_rmse()
    rmse.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, float("nan"), 5.0]))
    assert rmse.compute().item() == pytest.approx((4 / 2) ** 0.5)
    with pytest.raises(DomainfmError, match="class_index 3"):
        build_class_iou(num_classes=2, class_index=3)
