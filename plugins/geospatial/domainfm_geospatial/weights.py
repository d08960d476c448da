"""Key layouts of the official Prithvi EO-1.0 / EO-2.0 checkpoints (timm's filter pattern).

The host reads the file and loads what a filter returns strictly, so any missing, unexpected
or mis-shaped key is an error listing them all. Both layouts are recognised: EO-2.0 prefixes
encoder keys with ``encoder.`` and decoder keys with ``decoder.``; EO-1.0 has no prefix and
mixes the decoder keys (``decoder_*``, ``*_dec.*``, ``mask_token``) in at the top level.
:func:`prithvi` (the encoder's layout) sets the decoder keys aside and :func:`prithvi_mae` (the
MAE objective's) the encoder keys. Fixed sin-cos position tables are recomputed for any grid,
so they are checked for a matching width but never copied. ``bands`` names the checkpoint's
bands (HLS order by default): the patch-embedding (and decoder prediction) slices of the bands
the model shares with it are copied by name, and the model's other bands keep their
initialisation (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from domainfm_geospatial.bands import HLS_BANDS

log = logging.getLogger(__name__)

EO2_PREFIXES = ("encoder.", "decoder.")


def layout_of(state: Mapping[str, Tensor]) -> str:
    """``"EO-2.0"`` (prefixed keys) or ``"EO-1.0"`` (one flat namespace)."""
    return "EO-2.0" if any(k.startswith(EO2_PREFIXES) for k in state) else "EO-1.0"


def _is_decoder_eo1(key: str) -> bool:
    return key.startswith("decoder_") or "_dec." in key or key == "mask_token"


def split_parts(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(encoder, decoder) tensors of either layout, prefixes removed."""
    if layout_of(state) == "EO-2.0":
        return ({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")},
                {k.removeprefix("decoder."): v for k, v in state.items() if k.startswith("decoder.")})
    return ({k: v for k, v in state.items() if not _is_decoder_eo1(k)},
            {k: v for k, v in state.items() if _is_decoder_eo1(k)})


def _drop_positions(tensors: dict[str, Tensor], key: str, width: int, what: str) -> None:
    if key in tensors and tensors.pop(key).shape[-1] != width:
        raise ValueError(f"{key} width differs from {what} {width}: the checkpoint is a "
                         "different model size (check the preset)")


def _bands(bands: Sequence[str] | None, count: int, what: str) -> list[str]:
    names = list(bands or HLS_BANDS)
    if count != len(names):
        raise ValueError(f"{what} has {count} input bands but the layout's `bands` lists "
                         f"{len(names)} ({', '.join(names)}): name the checkpoint's bands")
    return names


def _by_band(weight: Tensor, init: Tensor, ckpt_bands: list[str], bands: list[str],
             axis: int) -> tuple[Tensor, list[str]]:
    """``init`` with the slices (along ``axis``) of the bands in the checkpoint copied by name."""
    shared = [b for b in bands if b in ckpt_bands]
    if not shared:
        raise ValueError(f"none of the model's bands ({', '.join(bands)}) is in the checkpoint "
                         f"({', '.join(ckpt_bands)}); name the checkpoint's bands in `bands`")
    out = init.clone()
    for i, band in enumerate(bands):
        if band in ckpt_bands:
            out.select(axis, i).copy_(weight.select(axis, ckpt_bands.index(band)))
    return out, [b for b in bands if b not in ckpt_bands]


def _fits(weight: Tensor, init: Tensor, axis: int) -> bool:
    """Same shape except along the band axis (else the host reports the mis-shaped key)."""
    return weight.ndim == init.ndim and all(
        a == b for i, (a, b) in enumerate(zip(weight.shape, init.shape)) if i != axis)


def _warn(initialised: list[str], ckpt_bands: list[str]) -> None:
    if initialised:
        log.warning("bands %s are not in the checkpoint (%s): their weights keep their "
                    "initialisation", initialised, ", ".join(ckpt_bands))


def prithvi(state: Mapping[str, Tensor], model: nn.Module, *,
            bands: list[str] | None = None) -> dict[str, Tensor]:
    """The encoder's tensors of an official Prithvi checkpoint (``bands``: its bands)."""
    tensors, _ = split_parts(state)
    _drop_positions(tensors, "pos_embed", model.embed_dim, "embed_dim")
    key = "patch_embed.proj.weight"
    own = model.state_dict()
    if key in tensors and _fits(tensors[key], own[key], 1):
        ckpt_bands = _bands(bands, tensors[key].shape[1], "the patch embedding")
        tensors[key], initialised = _by_band(tensors[key], own[key], ckpt_bands, model.bands, 1)
        _warn(initialised, ckpt_bands)
    return tensors


def prithvi_mae(state: Mapping[str, Tensor], model: nn.Module, *,
                bands: list[str] | None = None) -> dict[str, Tensor]:
    """The MAE decoder's tensors of an official Prithvi checkpoint (``bands``: its bands).

    The decoder predicts ``tubelet x patch x patch x bands`` values per token, bands fastest;
    its rows are mapped by band name like the patch embedding's input channels.
    """
    _, tensors = split_parts(state)
    _drop_positions(tensors, "decoder_pos_embed", model.decoder_dim, "decoder_dim")
    own = model.state_dict()
    bands_model = list(model.bands)
    for key in ("decoder_pred.weight", "decoder_pred.bias"):
        if key not in tensors:
            continue
        weight, init = tensors[key], own[key]
        per_pixel = init.shape[0] // len(bands_model)
        if weight.shape[0] % per_pixel or weight.shape[1:] != init.shape[1:]:
            continue  # reported as mis-shaped by the host
        ckpt_bands = _bands(bands, weight.shape[0] // per_pixel, "the decoder prediction")
        shape = (per_pixel, -1, *init.shape[1:])
        mapped, initialised = _by_band(weight.reshape(shape), init.reshape(shape), ckpt_bands,
                                       bands_model, 1)
        tensors[key] = mapped.reshape(init.shape)
        if key.endswith("weight"):
            _warn(initialised, ckpt_bands)
    return tensors


__all__ = ["layout_of", "prithvi", "prithvi_mae", "split_parts"]
