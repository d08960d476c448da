"""Masked-patch regression: the example's pretraining objective."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domainfm.records import Fraction

from domainfm_example.encoder import PatchTransformer


class MaskedPatches(nn.Module):
    """Hide a fraction of the patches and regress them from the visible ones."""

    def __init__(self, encoder: PatchTransformer, *, mask_ratio: Fraction = 0.5) -> None:
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
