"""Load official Prithvi EO-1.0 / EO-2.0 checkpoints into :class:`PrithviViT`, loudly.

Both key layouts are recognised: EO-2.0 prefixes encoder keys with ``encoder.`` (and decoder
keys with ``decoder.``), EO-1.0 has no prefix and mixes decoder keys (``decoder_*``,
``mask_token``) in at the top level. Decoder keys are not part of the encoder and are set aside.
Fixed sin-cos ``pos_embed`` tables are recomputed for any grid, so they are checked for a
matching width but never copied. When the checkpoint's bands differ from the model's, the
patch-embedding slices of the bands both share are copied by name and the rest keep their
initialisation; every other missing, unexpected or mis-shaped key is an error that lists them
all, so a checkpoint can never silently leave the encoder random.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from domainfm.errors import DomainfmError
from domainfm_geospatial.bands import HLS_BANDS
from domainfm_geospatial.encoder import PrithviViT

log = logging.getLogger(__name__)

_DECODER_EO1 = ("decoder_", "mask_token")
_IGNORED = ("pos_embed",)  # fixed sin-cos, recomputed


class WeightsError(DomainfmError):
    pass


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (weights only, no pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Prithvi checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise WeightsError(f"{path} is not a readable checkpoint: {exc}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} holds no state dict")
    return state


def encoder_keys(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Encoder tensors with the layout's prefix removed, and the layout's name."""
    if any(k.startswith("encoder.") for k in state):
        return {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}, "EO-2.0"
    return {k: v for k, v in state.items() if not k.startswith(_DECODER_EO1)}, "EO-1.0"


def load_prithvi(model: PrithviViT, source: str | Path | Mapping[str, Tensor], *,
                 checkpoint_bands: list[str] | None = None) -> dict[str, list[str]]:
    """Copy a Prithvi checkpoint into ``model``; returns what was mapped or left initialised.

    Raises :class:`WeightsError` naming every missing, unexpected and mis-shaped key.
    """
    where = str(source) if isinstance(source, (str, Path)) else "the given state dict"
    state = read_checkpoint(source) if isinstance(source, (str, Path)) else dict(source)
    tensors, layout = encoder_keys(state)
    ckpt_bands = list(checkpoint_bands or HLS_BANDS)
    own = model.state_dict()
    report: dict[str, list[str]] = {"layout": [layout], "initialised_bands": []}

    for key in _IGNORED:
        if key in tensors and tensors.pop(key).shape[-1] != model.embed_dim:
            raise WeightsError(f"{where}: {key} width differs from embed_dim {model.embed_dim}: "
                               "the checkpoint is a different model size (check the preset)")
    patch_key = "patch_embed.proj.weight"
    if patch_key in tensors:
        tensors[patch_key], report["initialised_bands"] = _map_bands(
            tensors[patch_key], own[patch_key], ckpt_bands, model.bands, where)

    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    mismatched = [f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} mis-shaped: " + "; ".join(mismatched[:8]))
        if missing:
            parts.append(f"{len(missing)} missing: {missing[:12]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {unexpected[:12]}")
        raise WeightsError(
            f"{where} ({layout} layout) does not fit geospatial.prithvi preset "
            f"{getattr(model, 'preset', '?')!r} (temporal_encoding={model.temporal_encoding}, "
            f"location_encoding={model.location_encoding}): " + " | ".join(parts)
        )
    model.load_state_dict(tensors, strict=True)
    if report["initialised_bands"]:
        log.warning("bands %s are not in the checkpoint (%s): their patch-embedding weights keep "
                    "their initialisation", report["initialised_bands"], ", ".join(ckpt_bands))
    return report


def _map_bands(weight: Tensor, init: Tensor, ckpt_bands: list[str], bands: list[str],
               where: str) -> tuple[Tensor, list[str]]:
    """Patch-embedding weight ``(D, C, t, p, p)`` rearranged from checkpoint to model bands."""
    if weight.shape[1] != len(ckpt_bands):
        raise WeightsError(f"{where}: patch embedding has {weight.shape[1]} input bands but "
                           f"checkpoint_bands lists {len(ckpt_bands)} ({', '.join(ckpt_bands)})")
    if weight.shape[0] != init.shape[0] or weight.shape[2:] != init.shape[2:]:
        return weight, []  # reported as mis-shaped by the caller
    shared = [b for b in bands if b in ckpt_bands]
    if not shared:
        raise WeightsError(f"{where}: none of the model's bands ({', '.join(bands)}) is in the "
                           f"checkpoint ({', '.join(ckpt_bands)}); name the bands in `bands`")
    out = init.clone()
    for i, band in enumerate(bands):
        if band in ckpt_bands:
            out[:, i] = weight[:, ckpt_bands.index(band)]
    return out, [b for b in bands if b not in ckpt_bands]
