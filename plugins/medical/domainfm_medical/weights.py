"""Key filters from released BM-MAE checkpoints to our modules (timm's ``checkpoint_filter_fn``).

The host reads the file (``.pth``/``.pt``/``.safetensors``; ``{"state_dict": ...}`` wrappers
unwrapped) and loads the result strictly, so a missing, unexpected or mis-shaped key stays an
error naming it. The reference layout is ``cls_token``, ``tokenizers.{mod}.patch_embedding.
{patch_embeddings.weight, patch_embeddings.bias, position_embeddings}``, ``blocks.N.{norm1,
attn.qkv, attn.out_proj, norm2, mlp.linear1, mlp.linear2}``, ``norm`` and ``decoder.*``: our
module names are the same, so a filter only

* strips wrapper prefixes (``module.`` from DDP, ``model.``/``net.`` from training wrappers),
* keeps the part's keys (the encoder's: all but ``decoder.*``; the objective's: ``decoder.*``),
* reconciles MONAI versions: checkpoints from MONAI < 1.4 lack the ``norm_cross_attn``
  LayerNorms that newer ``TransformerBlock``s carry unused (ours are kept), and older ones
  carry unused ``cross_attn`` weights (dropped).

Usage: ``encoder: {name: medical.bmmae, preset: base, weights: {path: bmmae.pth, layout: bmmae}}``
and ``objective: {name: medical.multimodal_mae, weights: {path: bmmae.pth, layout: bmmae}}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

PREFIXES = ("module.", "model.", "net.")
UNUSED_NORM = ".norm_cross_attn."
UNUSED_CROSS_ATTENTION = ".cross_attn."


def _unprefixed(state: Mapping[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        while key not in own and key.startswith(PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def _reconciled(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    own = model.state_dict()
    out = {k: v for k, v in state.items() if k in own or UNUSED_CROSS_ATTENTION not in k}
    out.update({k: v for k, v in own.items() if UNUSED_NORM in k and k not in out})
    return out


def bmmae_encoder(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A released BM-MAE (or ``ViTEncoder``) state dict -> ``medical.bmmae`` keys."""
    flat = _unprefixed(state, set(model.state_dict()))
    return _reconciled({k: v for k, v in flat.items() if not k.startswith("decoder.")}, model)


def bmmae_decoder(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A released BM-MAE state dict -> ``medical.multimodal_mae`` keys (its ``decoder.*``)."""
    flat = _unprefixed(state, set(model.state_dict()))
    return _reconciled({k: v for k, v in flat.items() if k.startswith("decoder.")}, model)
