"""Load released BM-MAE checkpoints into our encoder (and decoder).

The reference checkpoint layout is ``cls_token``, ``tokenizers.{mod}.patch_embedding.
{patch_embeddings.weight, patch_embeddings.bias, position_embeddings}``, ``blocks.N.{norm1,
attn.qkv, attn.out_proj, norm2, mlp.linear1, mlp.linear2}``, ``norm`` and ``decoder.*``. Our
modules use the same names, so conversion is: strip wrapper prefixes (``module.``, ``model.``,
``state_dict``), split encoder from decoder keys, reconcile MONAI versions (checkpoints from
MONAI < 1.4 lack the unused ``norm_cross_attn`` LayerNorms; older ones carry unused
``cross_attn`` weights), then check every key and shape, failing with the full list of what is
missing, unexpected or mis-shaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from domainfm.errors import DomainfmError

WRAPPERS = ("state_dict", "model", "net")
PREFIXES = ("module.", "model.", "net.")


class CheckpointMismatch(DomainfmError):
    pass


def _unwrap(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    for key in WRAPPERS:
        if key in state and isinstance(state[key], Mapping):
            state = state[key]  # type: ignore[assignment]
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _match(source: dict[str, torch.Tensor], module: nn.Module, what: str, origin: str) -> dict[str, torch.Tensor]:
    target = module.state_dict()
    state, missing, mismatched = {}, [], []
    for key, ref in target.items():
        if key not in source:
            if ".norm_cross_attn." in key:  # absent before MONAI 1.4 and unused: keep ours
                state[key] = ref
            else:
                missing.append(key)
            continue
        value = torch.as_tensor(source[key])
        if tuple(value.shape) != tuple(ref.shape):
            mismatched.append(f"{key}: checkpoint {tuple(value.shape)}, model {tuple(ref.shape)}")
        state[key] = value.to(ref.dtype)
    unexpected = sorted(k for k in source if k not in target and ".cross_attn." not in k)
    if missing or unexpected or mismatched:
        lines = [f"{origin} does not fit the {what}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}): {'; '.join(mismatched)}")
        lines.append("  (build the encoder with the checkpoint's preset, modalities and img_size)")
        raise CheckpointMismatch("\n".join(lines))
    return state


def convert_bmmae(state: Mapping[str, object], encoder: nn.Module, decoder: nn.Module | None = None,
                  origin: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """Split and check a BM-MAE state dict: ``(encoder_state, decoder_state or None)``."""
    flat = _unwrap(state)
    enc = {k: v for k, v in flat.items() if not k.startswith("decoder.")}
    dec = {k[len("decoder."):]: v for k, v in flat.items() if k.startswith("decoder.")}
    enc_state = _match(enc, encoder, "medical.bmmae encoder", origin)
    dec_state = _match(dec, decoder, "multimodal MAE decoder", origin) if decoder is not None else None
    return enc_state, dec_state


def load_bmmae(path: str | Path, encoder: nn.Module, objective: nn.Module | None = None) -> None:
    """Load a released BM-MAE ``.pth``/``.pt``/``.safetensors`` into ``encoder`` (and the
    decoder of a ``medical.multimodal_mae`` objective when given), in place."""
    path = Path(path)
    if not path.is_file():
        raise DomainfmError(f"BM-MAE checkpoint {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DomainfmError(f"cannot read BM-MAE checkpoint {str(path)!r}: {exc}") from None
    decoder = getattr(objective, "decoder", None)
    enc_state, dec_state = convert_bmmae(state, encoder, decoder, origin=f"checkpoint {str(path)!r}")
    encoder.load_state_dict(enc_state)
    if decoder is not None and dec_state is not None:
        decoder.load_state_dict(dec_state)
