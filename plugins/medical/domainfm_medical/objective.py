"""BM-MAE pretraining: multimodal masking with a Dirichlet budget, and the reconstruction decoder.

Per case, 75% of the tokens of its present modalities are masked; how the visible 25% splits
across those modalities is drawn from a symmetric Dirichlet(1) (MultiMAE style), so the encoder
learns to infer whole modalities from the others. The decoder (shared mask token + learned
per-modality embedding + fixed sin-cos positions) predicts every patch's voxels; the loss is the
MSE on masked patches of present modalities, averaged per modality and summed over modalities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from monai.networks.blocks import TransformerBlock
from monai.networks.blocks.pos_embed_utils import build_sincos_position_embedding
from torch import nn

from domainfm.errors import ConfigError, DataError
from domainfm.records import PositiveFloat, PositiveInt, Range
from domainfm_medical.encoder import BMMAEEncoder, freeze_unused_cross_attention, patchify


def unpatchify(patches: torch.Tensor, patch: int, grid: Sequence[int]) -> torch.Tensor:
    """(B, M, N, patch^3) -> (B, M, X, Y, Z); the inverse of :func:`patchify`."""
    b, m = patches.shape[:2]
    x = patches.reshape(b, m, *grid, patch, patch, patch).permute(0, 1, 2, 5, 3, 6, 4, 7)
    return x.reshape(b, m, *(g * patch for g in grid))


class MAEDecoder(nn.Module):
    """The reference decoder; names follow the checkpoint's ``decoder.*`` keys."""

    def __init__(self, *, modalities: Sequence[str], embed_dim: int, grid_size: Sequence[int],
                 patch_size: int, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.decoder_embed = nn.Linear(embed_dim, dim)
        self.mask_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embeddings = build_sincos_position_embedding(list(grid_size), dim, 3)
        self.position_embeddings.requires_grad_(False)
        self.modality_embeddings = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(1, 1, dim)) for m in self.modalities})
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(dim, dim * 4, num_heads, 0.0, qkv_bias=True, use_flash_attention=True)
            for _ in range(depth))
        freeze_unused_cross_attention(self.decoder_blocks)
        self.decoder_norm = nn.LayerNorm(dim)
        self.decoder_pred = nn.Linear(dim, patch_size**3)
        nn.init.trunc_normal_(self.mask_tokens, std=0.02)
        for p in self.modality_embeddings.values():
            nn.init.trunc_normal_(p, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, encoded: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor,
                present: torch.Tensor) -> torch.Tensor:
        """Predict every patch of every modality.

        Args:
            encoded: (B, 1 + L, D) encoder output (cls first) for the visible tokens.
            ids: (B, L) each visible token's ``modality * N + patch`` position.
            valid: (B, L) False on padding.
            present: (B, M) which modalities the case has; absent ones are not attended to.
        Returns:
            (B, M, N, patch^3) predicted voxels.
        """
        x = self.decoder_embed(encoded)
        b, _, dim = x.shape
        m, n = len(self.modalities), self.position_embeddings.shape[1]
        mask = self.mask_tokens.to(x.dtype).expand(b, m * n, dim)
        visible = torch.where(valid[..., None], x[:, 1:], mask[:, : ids.shape[1]])
        full = mask.scatter(1, ids[..., None].expand(-1, -1, dim), visible)
        modality = torch.cat([self.modality_embeddings[k] for k in self.modalities], 1)  # (1, M, dim)
        full = full.reshape(b, m, n, dim) + self.position_embeddings[:, None] + modality[:, :, None]
        seq = torch.cat([x[:, :1], full.reshape(b, m * n, dim)], 1)
        attn_mask = None
        if not bool(present.all()):
            keep = torch.cat([present.new_ones(b, 1), present.repeat_interleave(n, 1)], 1)
            attn_mask = keep[:, None, None, :]
        for block in self.decoder_blocks:
            seq = block(seq, attn_mask=attn_mask)
        return self.decoder_pred(self.decoder_norm(seq[:, 1:])).reshape(b, m, n, -1)


class MultimodalMAE(nn.Module):
    """``forward(encoder, batch) -> {"loss", "loss_<modality>"...}``; owns only the decoder."""

    def __init__(self, encoder: BMMAEEncoder, *, mask_ratio: float = 0.75, dirichlet_alpha: float = 1.0,
                 decoder_dim: int | None = None, decoder_depth: int = 3, decoder_heads: int | None = None,
                 norm_pix_loss: bool = False) -> None:
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.modalities = encoder.modalities
        self.patch_size, self.grid_size = encoder.patch_size, encoder.grid_size
        self.num_patches = encoder.num_patches
        self.mask_ratio, self.alpha, self.norm_pix_loss = mask_ratio, dirichlet_alpha, norm_pix_loss
        dim = decoder_dim or encoder.embed_dim // 2
        heads = decoder_heads or max(1, encoder.num_heads // 2)
        self.decoder = MAEDecoder(modalities=self.modalities, embed_dim=encoder.embed_dim,
                                  grid_size=self.grid_size, patch_size=self.patch_size, dim=dim,
                                  depth=decoder_depth, num_heads=heads)

    def visible_counts(self, present: torch.Tensor) -> torch.Tensor:
        """(B, M) visible tokens per modality: the case's budget split by Dirichlet(alpha)."""
        n = self.num_patches
        budget = ((1 - self.mask_ratio) * present.sum(1) * n).round().clamp_min(1)  # (B,)
        gamma = torch.distributions.Gamma(torch.full(present.shape, self.alpha, device=present.device),
                                          torch.ones(present.shape, device=present.device)).sample()
        share = gamma * present
        share = share / share.sum(1, keepdim=True)
        edges = torch.floor(share.cumsum(1) * budget[:, None] + 1e-4)  # exact total = budget
        counts = torch.diff(edges, dim=1, prepend=torch.zeros_like(edges[:, :1]))
        return counts.clamp(max=n).long()  # a share above one modality's N is capped

    def forward(self, encoder: BMMAEEncoder, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        image, present = encoder.inputs(batch)
        (b, m), n = present.shape, encoder.num_patches
        counts = self.visible_counts(present)
        rank = torch.rand(b, m, n, device=image.device).argsort(-1).argsort(-1)
        visible = rank < counts[..., None]  # (B, M, N)
        encoded, _, ids, valid = encoder.encode_kept(image, visible.reshape(b, m * n))
        pred = self.decoder(encoded, ids, valid, present)
        return self.loss(pred, image, ~visible & present[..., None])

    def loss(self, pred: torch.Tensor, image: torch.Tensor, masked: torch.Tensor) -> dict[str, torch.Tensor]:
        """Masked MSE per modality (averaged over its masked patches), summed over modalities."""
        target = patchify(image, self.patch_size)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        err = nn.functional.mse_loss(pred.float(), target, reduction="none").mean(-1)  # (B, M, N)
        w = masked.to(err.dtype)
        per_mod = (err * w).sum((0, 2)) / w.sum((0, 2)).clamp_min(1)
        out = {"loss": per_mod[w.sum((0, 2)) > 0].sum()}
        out.update({f"loss_{k}": per_mod[i].detach() for i, k in enumerate(self.modalities)})
        return out

    @torch.no_grad()
    def reconstruct(self, encoder: BMMAEEncoder, case: Mapping[str, Any],
                    missing: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """Predict the ``missing`` modalities of a case from its other modalities.

        ``case`` is a batch (``image``/``present`` or one tensor per modality name); all tokens of
        the available modalities are visible. Returns ``{modality: (B, X, Y, Z)}`` in the
        z-scored intensity units the model was trained on (for every modality if ``missing`` is
        empty).
        """
        unknown = [k for k in missing if k not in self.modalities]
        if unknown:
            raise DataError(f"cannot reconstruct unknown modalities {unknown}; known: {list(self.modalities)}")
        image, present = encoder.inputs(case)
        drop = torch.tensor([k in missing for k in self.modalities], device=image.device)
        available = present & ~drop
        if not available.any(1).all():
            raise DataError("reconstruction needs at least one available modality besides the missing ones")
        encoded, _, ids, valid = encoder.encode_kept(
            image, available.repeat_interleave(encoder.num_patches, 1))
        pred = unpatchify(self.decoder(encoded, ids, valid, available | drop), self.patch_size, self.grid_size)
        wanted = list(missing) or list(self.modalities)
        return {k: pred[:, self.modalities.index(k)] for k in wanted}


MaskRatio = Annotated[float, Range(gt=0, lt=1)]


def build_objective(encoder: nn.Module, *, mask_ratio: MaskRatio = 0.75,
                    dirichlet_alpha: PositiveFloat = 1.0, decoder_dim: PositiveInt | None = None,
                    decoder_depth: PositiveInt = 3, decoder_heads: PositiveInt | None = None,
                    norm_pix_loss: bool = False) -> MultimodalMAE:
    """``medical.multimodal_mae`` for a ``medical.bmmae`` encoder."""
    if not isinstance(encoder, BMMAEEncoder):
        raise ConfigError(f"medical.multimodal_mae needs a medical.bmmae encoder, got {type(encoder).__name__}")
    return MultimodalMAE(encoder, mask_ratio=mask_ratio, dirichlet_alpha=dirichlet_alpha,
                         decoder_dim=decoder_dim, decoder_depth=decoder_depth,
                         decoder_heads=decoder_heads, norm_pix_loss=norm_pix_loss)
