"""A patch transformer encoder, a masked-patch objective and a classification head."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from domainfm_example.plugin import PRESETS


class PatchTransformer(nn.Module):
    """Splits a 1D signal into patches and runs a small transformer over them."""

    def __init__(self, *, patch: int, width: int, depth: int, heads: int, max_patches: int = 64) -> None:
        super().__init__()
        self.patch, self.embed_dim = patch, width
        self.embed = nn.Linear(patch, width)
        self.pos = nn.Parameter(torch.zeros(1, max_patches, width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def patchify(self, signal: torch.Tensor) -> torch.Tensor:
        return signal.reshape(signal.shape[0], -1, self.patch)

    def encode_patches(self, patches: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.embed(patches) + self.pos[:, : patches.shape[1]]
        if keep is not None:  # only visible patches, as in a masked autoencoder
            tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        return self.norm(self.blocks(tokens))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        tokens = self.encode_patches(self.patchify(batch["signal"]))
        return {"tokens": tokens, "embedding": tokens.mean(1)}


def build_encoder(preset: str = "tiny", **overrides: Any) -> PatchTransformer:
    return PatchTransformer(**{**PRESETS[preset], **overrides})


class MaskedPatches(nn.Module):
    """Hide a fraction of the patches and regress them from the visible ones."""

    def __init__(self, encoder: PatchTransformer, *, mask_ratio: float = 0.5) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.embed_dim))
        width = encoder.embed_dim
        self.mixer = nn.TransformerEncoderLayer(width, 2, 2 * width, dropout=0.0,
                                                batch_first=True, norm_first=True)
        self.decoder = nn.Linear(width, encoder.patch)

    def forward(self, encoder: PatchTransformer, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        patches = encoder.patchify(batch["signal"])
        b, n, _ = patches.shape
        keep_n = max(1, int(n * (1 - self.mask_ratio)))
        order = torch.rand(b, n, device=patches.device).argsort(1)
        keep, hidden = order[:, :keep_n], order[:, keep_n:]
        visible = encoder.encode_patches(patches, keep)
        full = self.mask_token.expand(b, n, -1).clone()
        full = full.to(visible.dtype)  # autocast (bf16) may run the encoder in lower precision
        full.scatter_(1, keep[..., None].expand(-1, -1, full.shape[-1]), visible)
        full = full + encoder.pos[:, :n]
        predicted = self.decoder(self.mixer(full))  # hidden patches attend to visible ones
        index = hidden[..., None].expand(-1, -1, patches.shape[-1])
        loss = F.mse_loss(predicted.gather(1, index), patches.gather(1, index))
        return {"loss": loss}


class ClassifierHead(nn.Module):
    """Linear classification from the pooled embedding."""

    def __init__(self, encoder: PatchTransformer, *, num_classes: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(encoder.embed_dim, num_classes)

    def forward(self, features: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        return self.linear(features["embedding"])

    def loss(self, predictions: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(predictions, batch["target"])


def accuracy(*, num_classes: int = 4) -> Metric:
    """Share of correctly classified signals (from logits)."""
    return MulticlassAccuracy(num_classes=num_classes, average="micro")
