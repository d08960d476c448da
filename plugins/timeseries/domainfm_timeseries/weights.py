"""Key filters for checkpoint layouts (timm's ``checkpoint_filter_fn`` pattern), and nothing else.

The host reads the file (a granite-tsfm snapshot folder, a ``.safetensors``/``.bin`` file, a
domainfm run or export) and loads a filter's result strictly; a filter only selects and renames
keys. Layout ``granite`` (the first, so the default for files that are not domainfm runs or
exports with the part):

* encoder: granite's ``backbone.encoder.*`` (or ``encoder.*`` under any prefix) -> ``encoder.*``;
* forecast and quantile heads: ``decoder.*`` and ``head.*`` found anywhere in the keys (granite
  writes them at the top; a domainfm pretraining run under ``objective.forecaster.``). A quantile
  head tiles point weights across its quantiles; a head with exogenous infusion keeps its own
  (fresh) ``fcm_block`` when the source has none;
* the pretraining objective: the same, under ``forecaster.``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

_ENCODER = re.compile(r"(?:^|\.)(encoder\.(?:patcher|freq_mod|mlp_mixer_encoder)\..+)$")
_FORECASTER = re.compile(
    r"(?:^|\.)((?:decoder\.(?:adapter|decoder_block)|head\.(?:base_forecast_block|fcm_block))\..+)$")
_BLOCK = "head.base_forecast_block."
_FCM = "head.fcm_block."


def _select(state: dict[str, torch.Tensor], pattern: re.Pattern[str], what: str
            ) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    found: dict[str, str] = {}
    for key, value in state.items():
        match = pattern.search(key)
        if match is None:
            continue
        name = match.group(1)
        if name in out:
            raise ValueError(f"both {found[name]!r} and {key!r} hold {name!r}; keep one of them")
        out[name], found[name] = value, key
    if not out:
        raise ValueError(f"no {what} tensors in it")
    return out


def granite_encoder(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """granite ``backbone.encoder.*`` -> the TTM backbone's ``encoder.*``."""
    return _select(state, _ENCODER, "backbone.encoder.* (TTM backbone)")


def granite_head(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``decoder.*`` + ``head.*`` -> a forecast or quantile head's own keys."""
    out = _select(state, _FORECASTER, "decoder.*/head.* (TTM decoder and forecast head)")
    own = model.state_dict()
    quantiles = len(getattr(model, "quantiles", ()) or ()) or 1
    for key in (_BLOCK + "weight", _BLOCK + "bias"):
        if key in out and key in own and out[key].shape[1:] == own[key].shape[1:]:
            out[key] = _tile(out[key], own[key].shape[0], quantiles, model.prediction_length)
    if not any(k.startswith(_FCM) for k in out):
        out.update({k: v for k, v in own.items() if k.startswith(_FCM)})
    return out


def granite_objective(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``decoder.*`` + ``head.*`` -> the forecasting objective's ``forecaster.*``."""
    return {f"forecaster.{k}": v for k, v in granite_head(state, model.forecaster).items()}


def _tile(block: torch.Tensor, rows: int, quantiles: int, horizon: int) -> torch.Tensor:
    """The forecast block's rows (horizon x quantiles) from a point or same-shaped source."""
    if block.shape[0] == rows:
        return block
    if block.shape[0] * quantiles == rows:  # a point forecast stands for every quantile
        return block.repeat(quantiles, *([1] * (block.dim() - 1)))
    raise ValueError(f"its forecast block has {block.shape[0]} outputs, this head needs {rows} "
                     f"(horizon {horizon} x {quantiles} quantile(s)); build the head with the "
                     "checkpoint's horizon (head.params.prediction_length, plus "
                     "prediction_filter_length to keep fewer steps)")
