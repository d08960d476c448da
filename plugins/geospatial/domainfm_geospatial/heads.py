"""Task heads: semantic segmentation, pixel regression and scene classification.

Dense heads follow TerraTorch's recipe for Prithvi: a neck picks a few intermediate layers, turns
each token sequence back into a feature map with the frames stacked along channels (so single-
and multi-temporal inputs share one head), fuses them, and an upsampling decoder of 2x transposed
convolutions brings the patch grid back to pixels. ``num_classes``, ``num_frames`` and
``ignore_index`` come from the data specification unless a config sets them.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from domainfm.errors import DataError, DomainfmError
from domainfm.records import PositiveInt, Range

from domainfm_geospatial.encoder import ceil_log2, grid_tokens

Dropout = Annotated[float, Range(ge=0, lt=1)]


def _layers(depth: int, layers: list[int] | None) -> list[int]:
    """Default: four evenly spaced layers ending at the last (or all, for shallow encoders)."""
    if layers is None:
        count = min(4, depth)
        return [round((i + 1) * depth / count) - 1 for i in range(count)]
    bad = [i for i in layers if not -depth <= i < depth]
    if bad:
        raise DomainfmError(f"layers {bad} do not exist: the encoder has {depth} blocks")
    return [i % depth for i in layers]


class DenseDecoder(nn.Module):
    """Neck over intermediate layers + upsampling decoder -> ``(B, out_channels, H, W)``."""

    def __init__(self, encoder: nn.Module, *, out_channels: int, layers: list[int] | None,
                 neck_dim: int | None, frames: int | None) -> None:
        super().__init__()
        neck_dim = neck_dim or min(256, encoder.embed_dim)
        depth = len(encoder.blocks)
        self.layers = _layers(depth, layers)
        frames = frames or encoder.num_frames
        self.time_tokens = max(1, frames // encoder.tubelet_size)
        channels = encoder.embed_dim * self.time_tokens
        self.neck = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, neck_dim, 1),
                                                nn.BatchNorm2d(neck_dim), nn.GELU())
                                  for _ in self.layers)
        self.fuse = nn.Conv2d(neck_dim * len(self.layers), neck_dim, 1)
        stages, width = [], neck_dim
        for _ in range(ceil_log2(encoder.patch_size)):
            out = max(16, width // 2)
            stages.append(nn.Sequential(
                nn.ConvTranspose2d(width, out, 2, stride=2),
                nn.Conv2d(out, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
            width = out
        self.upsample = nn.Sequential(*stages)
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, features: dict[str, Any], size: tuple[int, int]) -> Tensor:
        grid = features["grid"]
        if grid[0] != self.time_tokens:
            raise DomainfmError(f"the head was built for {self.time_tokens} frames but the "
                                f"input has {grid[0]}; set the head's `num_frames`")
        hidden = features["hidden_states"]
        maps = [neck(grid_tokens(hidden[i], grid)) for neck, i in zip(self.neck, self.layers)]
        x = self.upsample(self.fuse(torch.cat(maps, dim=1)))
        x = self.out(x)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


def _image_size(batch: dict[str, Any]) -> tuple[int, int]:
    return tuple(batch["image"].shape[-2:])  # type: ignore[return-value]


class SegmentationHead(nn.Module):
    """Per-pixel class logits ``(B, K, H, W)``; cross-entropy ignoring ``ignore_index``."""

    def __init__(self, encoder: nn.Module, *, num_classes: int, layers: list[int] | None,
                 neck_dim: int | None, frames: int | None, ignore_index: int | None,
                 class_weights: list[float] | None) -> None:
        super().__init__()
        self.decoder = DenseDecoder(encoder, out_channels=num_classes, layers=layers,
                                    neck_dim=neck_dim, frames=frames)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        if weights is not None and len(weights) != num_classes:
            raise DomainfmError(f"class_weights has {len(weights)} values for {num_classes} classes")
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        return self.decoder(features, _image_size(batch))

    def loss(self, predictions: Tensor, batch: dict[str, Any]) -> Tensor:
        target = batch["target"].long()
        ignore = -100 if self.ignore_index is None else self.ignore_index
        valid = target != ignore
        if not valid.any():  # nothing labelled in this batch: no signal, but keep the graph
            return predictions.sum() * 0.0
        too_big = target[valid] >= self.num_classes
        if too_big.any() or (target[valid] < 0).any():
            raise DataError(f"label values {sorted(set(target[valid].unique().tolist()))} "
                            f"are outside 0..{self.num_classes - 1} (num_classes="
                            f"{self.num_classes}, ignore_index={self.ignore_index})")
        return F.cross_entropy(predictions, target, weight=self.class_weights, ignore_index=ignore)


class RegressionHead(nn.Module):
    """Per-pixel values ``(B, H, W)``; MSE over pixels whose target is finite."""

    def __init__(self, encoder: nn.Module, *, layers: list[int] | None, neck_dim: int | None,
                 frames: int | None) -> None:
        super().__init__()
        self.decoder = DenseDecoder(encoder, out_channels=1, layers=layers, neck_dim=neck_dim,
                                    frames=frames)

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        return self.decoder(features, _image_size(batch))[:, 0]

    def loss(self, predictions: Tensor, batch: dict[str, Any]) -> Tensor:
        target = batch["target"].to(predictions.dtype)
        valid = torch.isfinite(target)
        if not valid.any():
            return predictions.sum() * 0.0
        return F.mse_loss(predictions[valid], target[valid])


class ClassificationHead(nn.Module):
    """Scene label logits ``(B, K)`` from the mean-pooled tokens of all frames."""

    def __init__(self, encoder: nn.Module, *, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.LayerNorm(encoder.embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(encoder.embed_dim, num_classes)

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        return self.fc(self.dropout(self.norm(features["embedding"])))

    def loss(self, predictions: Tensor, batch: dict[str, Any]) -> Tensor:
        target = batch["target"].long()
        if target.numel() and (target.max() >= self.num_classes or target.min() < 0):
            raise DataError(f"labels {sorted(set(target.tolist()))} are outside 0.."
                            f"{self.num_classes - 1} (the head has {self.num_classes} classes)")
        return F.cross_entropy(predictions, target)


def build_segmentation(encoder: nn.Module, *, num_classes: PositiveInt,
                       layers: list[int] | None = None, neck_dim: PositiveInt | None = None,
                       num_frames: PositiveInt | None = None, ignore_index: int | None = None,
                       class_weights: list[float] | None = None) -> SegmentationHead:
    """``num_frames``: input frames the head will see (from the data; default: the encoder's);
    ``neck_dim``: fused feature width (default: the encoder width, at most 256);
    ``ignore_index``: the label of unlabelled pixels (from the data)."""
    return SegmentationHead(encoder, num_classes=num_classes, layers=layers, neck_dim=neck_dim,
                            frames=num_frames, ignore_index=ignore_index,
                            class_weights=class_weights)


def build_regression(encoder: nn.Module, *, layers: list[int] | None = None,
                     neck_dim: PositiveInt | None = None,
                     num_frames: PositiveInt | None = None) -> RegressionHead:
    return RegressionHead(encoder, layers=layers, neck_dim=neck_dim, frames=num_frames)


def build_classification(encoder: nn.Module, *, num_classes: PositiveInt,
                         dropout: Dropout = 0.0) -> ClassificationHead:
    return ClassificationHead(encoder, num_classes=num_classes, dropout=dropout)
