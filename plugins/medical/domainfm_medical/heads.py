"""Task heads on the BM-MAE encoder: UNETR-style segmentation and case classification.

The segmentation decoder is UNETR's (MONAI's ``UnetrBasicBlock``/``UnetrPrUpBlock``/
``UnetrUpBlock``), generalised to any power-of-two patch size: with patch ``2^k`` it takes skip
features from the input volume and from ``k - 1`` evenly spaced blocks (blocks 3, 6, 9 of 12 for
patch 16, as UNETR). Token features are fused across the case's present modalities by
averaging at each patch position, so the head works for any modality subset. Volumes larger
than the training crop go through :func:`sliding_window_segment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.networks.blocks import UnetrBasicBlock, UnetrPrUpBlock, UnetrUpBlock
from torch import nn

from domainfm.errors import ConfigError, DataError
from domainfm.records import Fraction, PositiveInt
from domainfm_medical.encoder import BMMAEEncoder, to_grid


class UNETRHead(nn.Module):
    """Segmentation logits (B, C, X, Y, Z) from the encoder's tokens and the input volume."""

    def __init__(self, *, embed_dim: int, depth: int, num_modalities: int, patch_size: int,
                 grid_size: tuple[int, int, int], num_classes: int,
                 activation: Literal["sigmoid", "softmax"], feature_size: int,
                 norm_name: str = "instance") -> None:
        super().__init__()
        k = int(math.log2(patch_size))
        if 2**k != patch_size or k < 1:
            raise ConfigError(f"the UNETR head needs a power-of-two patch size, got {patch_size}")
        self.grid_size, self.num_patches = grid_size, int(math.prod(grid_size))
        self.activation, self.num_classes = activation, num_classes
        self.layers = [min(depth - 1, max(0, depth * j // k)) for j in range(1, k)]
        f = feature_size
        # input skip: the modalities plus their presence, so an absent (zero) channel is explicit
        self.encoder0 = UnetrBasicBlock(3, 2 * num_modalities, f, 3, 1, norm_name, res_block=True)
        self.skips = nn.ModuleList(
            UnetrPrUpBlock(3, embed_dim, f * 2**j, num_layer=k - j - 1, kernel_size=3, stride=1,
                           upsample_kernel_size=2, norm_name=norm_name, res_block=True)
            for j in range(1, k))
        self.ups = nn.ModuleList(
            UnetrUpBlock(3, embed_dim if j == k - 1 else f * 2 ** (j + 1), f * 2**j, 3, 2, norm_name,
                         res_block=True)
            for j in range(k))
        self.out = nn.Conv3d(f, num_classes, 1)
        if activation == "sigmoid":
            self.criterion = DiceCELoss(sigmoid=True)
        else:
            self.criterion = DiceCELoss(softmax=True, to_onehot_y=True)

    def forward(self, features: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        image, present = features["image"], features["present"]
        grid = lambda t: to_grid(t, features, self.num_patches, self.grid_size)  # noqa: E731
        presence = present[:, :, None, None, None].to(image.dtype).expand_as(image)
        skips = [self.encoder0(torch.cat([image, presence], 1))]
        skips += [block(grid(features["hidden_states"][i])) for block, i in zip(self.skips, self.layers)]
        x = grid(features["tokens"])
        for j in reversed(range(len(self.ups))):
            x = self.ups[j](x, skips[j])
        return self.out(x)

    def loss(self, predictions: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        target = batch["target"]
        if self.activation == "sigmoid":
            if target.shape[1] != self.num_classes:
                raise DataError(f"segmentation target has {target.shape[1]} channels, the head "
                                    f"predicts {self.num_classes} (num_classes)")
            return self.criterion(predictions, target.to(predictions.dtype))
        return self.criterion(predictions, target.long())


class ClassificationHead(nn.Module):
    """Case-level logits (B, C) from the cls token."""

    def __init__(self, *, embed_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, num_classes))
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, features: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(features["embedding"])

    def loss(self, predictions: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        target = batch["target"].long()
        if bool((target < 0).any()) or bool((target >= self.num_classes).any()):
            raise DataError(f"classification labels must be in 0..{self.num_classes - 1}, got "
                                f"{sorted(set(target.tolist()))} (cases {batch.get('case', '?')})")
        return self.criterion(predictions, target)


def sliding_window_segment(encoder: BMMAEEncoder, head: UNETRHead, image: torch.Tensor,
                           present: torch.Tensor, *, overlap: float = 0.5, sw_batch_size: int = 2,
                           mode: str = "gaussian", modalities: Sequence[str] | None = None) -> torch.Tensor:
    """Segmentation logits for volumes of any size (B, M, X, Y, Z), window = the training crop.

    ``modalities`` names the channels of ``image`` (default: the encoder's order). Windows are
    blended with Gaussian weights; smaller volumes are padded and cropped back.
    """
    names = list(modalities or encoder.modalities)
    roi = (encoder.img_size,) * 3
    outputs = []
    for b in range(image.shape[0]):
        case_present = present[b : b + 1]

        def predict(window: torch.Tensor, p: torch.Tensor = case_present) -> torch.Tensor:
            batch = {"image": window, "present": p.expand(window.shape[0], -1), "modalities": names}
            return head(encoder(batch), batch)

        outputs.append(sliding_window_inference(image[b : b + 1], roi, sw_batch_size, predict,
                                                overlap=overlap, mode=mode))
    return torch.cat(outputs)


Activation = Literal["sigmoid", "softmax"]


def build_segmentation(encoder: nn.Module, *, num_classes: PositiveInt, activation: Activation,
                       feature_size: PositiveInt = 16,
                       norm_name: str = "instance") -> UNETRHead:
    """``medical.segmentation``: sigmoid multi-label (TC/WT/ET) or softmax classes; ``num_classes``
    and ``activation`` come from the data specification."""
    if not isinstance(encoder, BMMAEEncoder):
        raise ConfigError(f"medical.segmentation needs a medical.bmmae encoder, got {type(encoder).__name__}")
    return UNETRHead(embed_dim=encoder.embed_dim, depth=encoder.depth,
                     num_modalities=len(encoder.modalities), patch_size=encoder.patch_size,
                     grid_size=encoder.grid_size, num_classes=num_classes, activation=activation,
                     feature_size=feature_size, norm_name=norm_name)


def build_classification(encoder: nn.Module, *, num_classes: PositiveInt,
                         dropout: Fraction = 0.0) -> ClassificationHead:
    """``medical.classification``: a linear layer on the cls token; ``num_classes`` comes from
    the data specification."""
    return ClassificationHead(embed_dim=encoder.embed_dim, num_classes=num_classes, dropout=dropout)
