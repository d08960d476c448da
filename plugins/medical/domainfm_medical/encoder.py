"""BM-MAE's encoder: one patch tokenizer per modality, fixed 3D sin-cos positions, a ViT.

There is no modality token: the separate patch convolutions give each modality its identity, as
in the reference. A case contributes tokens only for the modalities it has, so one model serves
every subset. Module names follow the released checkpoint layout (``tokenizers.{mod}.
patch_embedding.*``, ``blocks.N.{norm1, attn.qkv, attn.out_proj, norm2, mlp.linear1,
mlp.linear2}``, ``norm``, ``cls_token``) because the blocks are MONAI's own ``TransformerBlock``
(run with PyTorch's scaled-dot-product attention) and the tokenizers MONAI's
``PatchEmbeddingBlock``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.blocks import PatchEmbeddingBlock, TransformerBlock
from torch import nn

from domainfm.errors import ConfigError, DataError
from domainfm.records import Fraction, PositiveInt
from domainfm_medical.presets import PRESETS

MODALITIES = ("t1", "t1ce", "t2", "flair")


def patchify(image: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, M, X, Y, Z) -> (B, M, N, patch^3), patches in the tokenizers' raster order."""
    b, m, *size = image.shape
    g = [s // patch for s in size]
    x = image.reshape(b, m, g[0], patch, g[1], patch, g[2], patch)
    return x.permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(b, m, g[0] * g[1] * g[2], patch**3)


def freeze_unused_cross_attention(blocks: nn.ModuleList) -> None:
    """MONAI >= 1.4 blocks carry a ``norm_cross_attn`` that self-attention never uses.

    Kept (checkpoints of that layout hold it) but frozen, so DDP does not wait for gradients
    that never come and needs no ``find_unused_parameters``.
    """
    for block in blocks:
        norm = getattr(block, "norm_cross_attn", None)
        if isinstance(norm, nn.Module):
            norm.requires_grad_(False)


class Tokenizer(nn.Module):
    """One modality's 3D patch embedding plus its frozen sin-cos position embedding."""

    def __init__(self, img_size: int, patch_size: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.patch_embedding = PatchEmbeddingBlock(
            in_channels=1, img_size=img_size, patch_size=patch_size, hidden_size=embed_dim,
            num_heads=num_heads, proj_type="conv", pos_embed_type="sincos", spatial_dims=3)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:  # (B, 1, X, Y, Z) -> (B, N, D)
        return self.patch_embedding(volume)


class BMMAEEncoder(nn.Module):
    """The multimodal ViT encoder.

    ``forward(batch)`` accepts either ``batch["image"]`` (B, M, X, Y, Z) with an optional
    ``batch["present"]`` (B, M) mask and optional ``batch["modalities"]`` naming the channels,
    or one tensor per modality by name (``{"t1": (B, 1, X, Y, Z), "flair": ...}``). It returns
    ``embedding`` (the cls token, (B, D)), ``tokens`` (B, L, D) of the present modalities,
    ``hidden_states`` (one (B, L, D) per block), ``token_ids`` (B, L) giving each token's
    ``modality * N + patch`` position and ``token_mask`` (B, L) (False on padding when cases of a
    batch have different numbers of modalities), plus ``present`` (B, M) and the stacked
    ``image`` (B, M, X, Y, Z) that dense heads use as their full-resolution skip.
    """

    def __init__(self, *, modalities: Sequence[str] = MODALITIES, img_size: int = 32,
                 patch_size: int = 8, embed_dim: int = 192, depth: int = 4, num_heads: int = 3,
                 mlp_dim: int = 384, qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ConfigError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        self.modalities = tuple(modalities)
        self.img_size, self.patch_size = img_size, patch_size
        self.grid_size = (img_size // patch_size,) * 3
        self.num_patches = self.grid_size[0] ** 3
        self.embed_dim, self.depth, self.num_heads = embed_dim, depth, num_heads
        self.tokenizers = nn.ModuleDict(
            {m: Tokenizer(img_size, patch_size, embed_dim, num_heads) for m in self.modalities})
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, mlp_dim, num_heads, dropout, qkv_bias=qkv_bias,
                             use_flash_attention=True) for _ in range(depth))
        freeze_unused_cross_attention(self.blocks)
        self.norm = nn.LayerNorm(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ inputs

    def inputs(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image (B, M, X, Y, Z), present (B, M) bool)`` in this encoder's modality order."""
        if "image" in batch:
            image = batch["image"]
            names = list(batch.get("modalities") or self.modalities)
            if image.ndim != 5 or image.shape[1] != len(names):
                raise DataError(f"batch['image'] must be (B, {len(names)}, X, Y, Z) for modalities "
                                    f"{names}, got {tuple(image.shape)}")
            present = batch.get("present")
            present = (torch.ones(image.shape[:2], dtype=torch.bool, device=image.device)
                       if present is None else present.to(image.device).bool())
            channels = {n: (image[:, i], present[:, i]) for i, n in enumerate(names)}
        else:
            channels = {}
            for name in self.modalities:
                if name in batch and batch[name] is not None:
                    v = batch[name]
                    v = v[:, 0] if v.ndim == 5 else v
                    channels[name] = (v, torch.ones(v.shape[0], dtype=torch.bool, device=v.device))
            names = list(channels)
        unknown = [n for n in names if n not in self.modalities]
        if unknown:
            raise DataError(f"unknown modalities {unknown}; this encoder knows {list(self.modalities)}")
        if not channels:
            raise DataError(f"the batch holds none of the modalities {list(self.modalities)} "
                                "(pass batch['image'] or one tensor per modality name)")
        ref = next(iter(channels.values()))[0]
        if tuple(ref.shape[1:]) != (self.img_size,) * 3:
            raise DataError(f"volumes must be {self.img_size}^3 for this encoder, got "
                                f"{tuple(ref.shape[1:])}; crop/pad them or use sliding-window inference")
        zeros = torch.zeros_like(ref)
        no = torch.zeros(ref.shape[0], dtype=torch.bool, device=ref.device)
        image = torch.stack([channels.get(m, (zeros, no))[0] for m in self.modalities], 1)
        present = torch.stack([channels.get(m, (zeros, no))[1] for m in self.modalities], 1)
        if not present.any(1).all():
            raise DataError("every case in the batch needs at least one present modality")
        return image, present

    def embed_tokens(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Tokens with positions at ``ids`` (B, L) (``modality * N + patch``) only: (B, L, D).

        The tokenizers' convolutions have stride = kernel, so each is a linear map of a patch's
        voxels: applied to the chosen patches alone, absent modalities and the masked 75% of
        pretraining cost nothing.
        """
        b, length = ids.shape
        patches = patchify(image, self.patch_size).reshape(b, -1, self.patch_size**3)
        chosen = patches.gather(1, ids[..., None].expand(-1, -1, patches.shape[-1]))
        modality, position = ids // self.num_patches, ids % self.num_patches
        out = chosen.new_empty(b, length, self.embed_dim)
        for i, name in enumerate(self.modalities):
            block = self.tokenizers[name].patch_embedding
            conv, where = block.patch_embeddings, modality == i
            out[where] = (nn.functional.linear(chosen[where], conv.weight.flatten(1), conv.bias)
                          + block.position_embeddings[0, position[where]])
        return out

    # ------------------------------------------------------------------ transformer

    def encode(self, tokens: torch.Tensor, valid: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks on ``tokens`` (B, L, D) with a cls token prepended.

        ``valid`` (B, L) masks padding out of attention. Returns the normed sequence
        (B, 1 + L, D) and each block's output without the cls token.
        """
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], 1)
        attn_mask = None
        if valid is not None and not bool(valid.all()):
            keep = torch.cat([valid.new_ones(valid.shape[0], 1), valid], 1)
            attn_mask = keep[:, None, None, :]
        hidden = []
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
            hidden.append(x[:, 1:])
        return self.norm(x), hidden

    def encode_kept(self, image: torch.Tensor, keep: torch.Tensor
                    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Embed and encode the tokens where ``keep`` (B, M*N) is True.

        Each case's kept tokens come first in position order, then padding up to the case with
        the most. Returns :meth:`encode`'s output, the token ids (B, L) and ``valid`` (B, L),
        False on padding.
        """
        length = int(keep.sum(1).max())
        ids = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :length]
        valid = keep.gather(1, ids)
        out, hidden = self.encode(self.embed_tokens(image, ids), valid)
        return out, hidden, ids, valid

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        image, present = self.inputs(batch)
        out, hidden, ids, token_mask = self.encode_kept(
            image, present.repeat_interleave(self.num_patches, dim=1))
        return {"embedding": out[:, 0], "tokens": out[:, 1:], "hidden_states": hidden,
                "token_ids": ids, "token_mask": token_mask, "present": present,
                "image": image * present[:, :, None, None, None].to(image.dtype)}


def to_grid(tokens: torch.Tensor, features: Mapping[str, Any], num_patches: int,
            grid_size: Sequence[int]) -> torch.Tensor:
    """Fuse tokens (B, L, D) into a feature volume (B, D, gx, gy, gz).

    At each patch position the tokens of the case's present modalities are averaged, so the
    result has the same meaning whichever subset of modalities the case has.
    """
    b, _, d = tokens.shape
    ids = features["token_ids"] % num_patches
    weight = features["token_mask"].to(tokens.dtype)
    summed = tokens.new_zeros(b, num_patches, d).scatter_add(1, ids[..., None].expand(-1, -1, d),
                                                            tokens * weight[..., None])
    count = tokens.new_zeros(b, num_patches).scatter_add(1, ids, weight).clamp_min(1)
    grid = summed / count[..., None]
    return grid.transpose(1, 2).reshape(b, d, *grid_size)


def build_encoder(*, preset: str = "tiny", modalities: list[str] | None = None,
                  img_size: PositiveInt | None = None, patch_size: PositiveInt | None = None,
                  embed_dim: PositiveInt | None = None, depth: PositiveInt | None = None,
                  num_heads: PositiveInt | None = None, mlp_dim: PositiveInt | None = None,
                  qkv_bias: bool = True, dropout: Fraction = 0.0) -> BMMAEEncoder:
    """Build ``medical.bmmae`` from a preset, with any hyper-parameter overridden."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown medical.bmmae preset {preset!r}; valid: {', '.join(PRESETS)}")
    params = dict(PRESETS[preset])
    overrides = dict(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                     num_heads=num_heads, mlp_dim=mlp_dim)
    params.update({k: v for k, v in overrides.items() if v is not None})
    if params["embed_dim"] % params["num_heads"]:
        raise ConfigError(f"embed_dim {params['embed_dim']} must divide by num_heads {params['num_heads']}")
    names = list(modalities or MODALITIES)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"modalities must be distinct names, got {names}")
    return BMMAEEncoder(modalities=names, qkv_bias=qkv_bias, dropout=dropout, **params)
