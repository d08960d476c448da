"""Prithvi's masked-autoencoder pretraining objective.

75% of the tubelet tokens are dropped at random; the encoder sees the rest, a light transformer
decoder (its own 3D sin-cos positions, mask token and, for TL models, its own time/location
encodings) reconstructs every tubelet, and the loss is the MSE on the masked ones only, against
raw or per-patch normalised pixels. The decoder's module names match the official checkpoints
(layout ``prithvi``: :func:`domainfm_geospatial.weights.prithvi_mae`).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from domainfm.errors import ConfigError
from domainfm.records import PositiveInt

from domainfm_geospatial.encoder import LocationEncoder, PrithviViT, TemporalEncoder, sincos_3d


def patchify(x: Tensor, patch: int, tubelet: int) -> Tensor:
    """``(B, C, T, H, W) -> (B, L, tubelet*patch*patch*C)`` in the encoder's token order."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(b, (t // tubelet) * (h // patch) * (w // patch), tubelet * patch * patch * c)


def unpatchify(p: Tensor, grid: tuple[int, int, int], channels: int, patch: int,
               tubelet: int) -> Tensor:
    b = p.shape[0]
    t, h, w = grid
    x = p.reshape(b, t, h, w, tubelet, patch, patch, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, channels, t * tubelet, h * patch, w * patch)


def masking(b: int, n: int, ratio: float, noise: Tensor | None = None,
            device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Keep a random ``1 - ratio`` of ``n`` tokens per sample: kept ids ``(B, K)``, mask
    ``(B, N)`` (1 = dropped) and the ids that restore the original order."""
    keep = max(1, int(n * (1 - ratio)))
    noise = torch.rand(b, n, device=device) if noise is None else noise
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    mask = torch.ones(b, n, device=noise.device)
    mask[:, :keep] = 0
    return shuffle[:, :keep], mask.gather(1, restore), restore


class PrithviMAE(nn.Module):
    """Decoder + loss; the encoder is passed to ``forward`` and never registered here."""

    def __init__(self, encoder: PrithviViT, *, mask_ratio: float, norm_pix_loss: bool,
                 decoder_dim: int, decoder_depth: int, decoder_heads: int) -> None:
        super().__init__()
        if not isinstance(encoder, PrithviViT):
            raise ConfigError(f"geospatial.mae needs a geospatial.prithvi encoder, "
                              f"got {type(encoder).__name__}")
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.decoder_dim = decoder_dim
        self.bands = list(encoder.bands)  # the order of decoder_pred's per-pixel outputs
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        if encoder.temporal_encoding:
            self.temporal_embed_dec = TemporalEncoder(decoder_dim)
        if encoder.location_encoding:
            self.location_embed_dec = LocationEncoder(decoder_dim)
        eps = encoder.norm_eps  # the decoder's LayerNorms match the encoder's (TerraTorch too)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads, 4.0, qkv_bias=True,
                  norm_layer=functools.partial(nn.LayerNorm, eps=eps))
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=eps)
        patch_dim = encoder.tubelet_size * encoder.patch_size**2 * encoder.in_chans
        self.decoder_pred = nn.Linear(decoder_dim, patch_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def decode(self, latent: Tensor, restore: Tensor, grid: tuple[int, int, int],
               temporal: Tensor | None, location: Tensor | None) -> Tensor:
        x = self.decoder_embed(latent)
        b, n = restore.shape
        masked = self.mask_token.expand(b, n + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], masked], dim=1)
        patches = patches.gather(1, restore[..., None].expand(-1, -1, x.shape[2]))
        patches = patches + sincos_3d(self.decoder_dim, grid)[:, 1:].to(patches)
        if temporal is not None:
            patches = patches + self.temporal_embed_dec(temporal, grid[1] * grid[2])
        if location is not None:
            patches = patches + self.location_embed_dec(location)
        x = torch.cat([x[:, :1], patches], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def reconstruct(self, encoder: PrithviViT, batch: dict[str, Any], noise: Tensor | None = None
                    ) -> dict[str, Any]:
        """Masked forward pass: predicted and target patches, the mask and the token grid."""
        x = encoder.pixels(batch)
        temporal, location = encoder.coords(batch, x.shape[2])
        grid = encoder.patch_embed.grid(x.shape)
        keep, mask, restore = masking(x.shape[0], grid[0] * grid[1] * grid[2], self.mask_ratio,
                                      noise, x.device)
        kept, _ = encoder.embed(x, temporal, location, keep)  # masked tubelets are never embedded
        latent, _ = encoder.transform(kept)
        pred = self.decode(latent, restore, grid, temporal, location)
        target = patchify(x, encoder.patch_size, encoder.tubelet_size)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return {"pred": pred, "target": target, "mask": mask, "grid": grid}

    def forward(self, encoder: PrithviViT, batch: dict[str, Any],
                noise: Tensor | None = None) -> dict[str, Tensor]:
        out = self.reconstruct(encoder, batch, noise)
        per_patch = (out["pred"] - out["target"]).pow(2).mean(-1)
        mask = out["mask"]
        loss = (per_patch * mask).sum() / mask.sum()
        visible = (per_patch * (1 - mask)).sum() / (1 - mask).sum().clamp(min=1)
        return {"loss": loss, "visible_loss": visible.detach()}


def build_mae(
    encoder: nn.Module,
    *,
    mask_ratio: float = 0.75,
    norm_pix_loss: bool = False,
    decoder_dim: PositiveInt | None = None,
    decoder_depth: PositiveInt | None = None,
    decoder_heads: PositiveInt | None = None,
) -> PrithviMAE:
    """Prithvi's MAE; decoder sizes default to the encoder preset's (512 wide, 8 blocks, 16 heads)."""
    defaults = getattr(encoder, "decoder_defaults", {})
    return PrithviMAE(
        encoder, mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss,
        decoder_dim=decoder_dim or defaults.get("decoder_dim", 512),
        decoder_depth=decoder_depth or defaults.get("decoder_depth", 8),
        decoder_heads=decoder_heads or defaults.get("decoder_heads", 16),
    )
