"""A patch transformer over 1D signals: the example's encoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domainfm_example.presets import PRESETS


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
