"""granite-tsfm ``TinyTimeMixerForPrediction`` checkpoints: their architecture, read from the
tensors, so every TTM revision (r1, r2, r2.1; any context and horizon; prefix token or not)
loads without a preset.

:func:`infer_config` reads the hyper-parameters from tensor shapes (``config.json`` values win);
:func:`granite_components` turns a checkpoint into the run-config ``encoder`` and ``head``
entries that rebuild it through the host (``domainfm finetune``/``evaluate``);
:func:`load_granite` builds the encoder and head in Python. Files are read by the host's reader
and loaded strictly through the ``granite`` layouts of weights.py.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from domainfm.errors import WeightsError
from domainfm.weights import load_strict, read_checkpoint
from domainfm_timeseries.encoder import TTMBackbone
from domainfm_timeseries.heads import ForecastHead
from domainfm_timeseries.presets import TTMConfig
from domainfm_timeseries.weights import granite_encoder, granite_head

_ENC = "backbone.encoder."


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def infer_config(state: dict[str, torch.Tensor], config: dict[str, Any] | None = None
                 ) -> TTMConfig:
    """The TTMConfig a granite state dict was built with (``config.json`` values win)."""
    config = dict(config or {})
    if f"{_ENC}patcher.weight" not in state:
        raise WeightsError("not a TinyTimeMixerForPrediction state dict: "
                           f"'{_ENC}patcher.weight' is missing")
    d_model, patch_length = state[f"{_ENC}patcher.weight"].shape
    levels = _count(state, re.escape(_ENC) + r"mlp_mixer_encoder\.mixers\.(\d+)\.mixer_layers")
    last = f"{_ENC}mlp_mixer_encoder.mixers.{max(levels - 1, 0)}."
    layer = f"{last}mixer_layers.0." if levels else f"{_ENC}mlp_mixer_encoder.mixers.0."
    num_layers = (_count(state, re.escape(f"{last}mixer_layers.") + r"(\d+)\.") if levels
                  else _count(state, re.escape(f"{_ENC}mlp_mixer_encoder.mixers.") + r"(\d+)\."))
    fc1 = state[f"{layer}feature_mixer.mlp.fc1.weight"]
    expansion = fc1.shape[0] // fc1.shape[1]
    prefix = f"{_ENC}freq_mod.0.weight" in state
    patch_fc1 = state.get(f"{layer}patch_mixer.mlp.fc1.weight")
    num_patches = patch_fc1.shape[1] if patch_fc1 is not None else 1
    stride = int(config.get("patch_stride", patch_length))
    context = patch_length + stride * (num_patches - int(prefix) - 1)
    mix = f"{layer}channel_feature_mixer.mlp.fc1.weight"
    channels = state[mix].shape[1] if mix in state else int(config.get("num_input_channels", 1))
    adapter = state.get("decoder.adapter.weight")
    dec_d = adapter.shape[0] if adapter is not None else d_model
    dec_layers = _count(state, r"decoder\.decoder_block\.mixers\.(\d+)\.")
    dec_mix_key = "decoder.decoder_block.mixers.0.channel_feature_mixer.mlp.fc1.weight"
    dec_mix = dec_mix_key in state
    if dec_mix:
        channels = state[dec_mix_key].shape[1]
    if "head.base_forecast_block.weight" not in state:
        raise WeightsError("not a TinyTimeMixerForPrediction state dict: "
                           "'head.base_forecast_block.weight' is missing")
    horizon = state["head.base_forecast_block.weight"].shape[0]
    return TTMConfig(
        context_length=int(config.get("context_length", context)), prediction_length=horizon,
        patch_length=patch_length, patch_stride=stride, d_model=d_model, num_layers=num_layers,
        adaptive_patching_levels=levels, expansion_factor=expansion,
        dropout=float(config.get("dropout", 0.2)),
        mode="mix_channel" if mix in state else "common_channel",
        num_input_channels=channels, resolution_prefix_tuning=prefix,
        frequency_token_vocab_size=(state[f"{_ENC}freq_mod.0.weight"].shape[0] if prefix else 10),
        decoder_d_model=dec_d, decoder_num_layers=dec_layers,
        decoder_mode="mix_channel" if dec_mix else "common_channel",
        head_dropout=float(config.get("head_dropout", 0.7))).validate()


def head_params(config: dict[str, Any] | None) -> dict[str, Any]:
    """Forecast-head parameters a granite ``config.json`` sets (exogenous infusion)."""
    config = config or {}
    names = {"prediction_channel_indices": "prediction_channels",
             "exogenous_channel_indices": "exogenous_channels",
             "prediction_filter_length": "prediction_filter_length",
             "fcm_context_length": "fcm_context_length", "fcm_use_mixer": "fcm_use_mixer"}
    return {ours: config[theirs] for theirs, ours in names.items() if config.get(theirs) is not None}


def granite_components(source: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Run-config ``encoder`` and ``head`` entries that rebuild a granite checkpoint through the
    host: the architecture as encoder parameters, the file as both parts' ``weights``."""
    checkpoint = read_checkpoint(source)
    cfg = infer_config(checkpoint.tensors, checkpoint.config)
    weights = {"path": str(source), "layout": "granite"}
    return {"encoder": {"name": "timeseries.ttm", "preset": "r2_512_96", "params": asdict(cfg),
                        "weights": weights},
            "head": {"name": "timeseries.forecast", "params": head_params(checkpoint.config),
                     "weights": weights}}


def load_granite(source: str | os.PathLike[str]) -> tuple[TTMBackbone, ForecastHead]:
    """Encoder and forecast head holding a granite checkpoint (a Hugging Face snapshot folder,
    whose ``config.json`` supplies exogenous channel indices, or a weights file), in eval mode."""
    checkpoint = read_checkpoint(source)
    encoder = TTMBackbone(infer_config(checkpoint.tensors, checkpoint.config))
    head = ForecastHead(encoder, **head_params(checkpoint.config))
    where = f"{source} (granite layout)"
    for module, layout in ((encoder, granite_encoder), (head, granite_head)):
        try:
            tensors = layout(checkpoint.tensors, module)
        except ValueError as exc:
            raise WeightsError(f"{source} does not fit the 'granite' layout: {exc}") from None
        load_strict(module, tensors, where)
    return encoder.eval(), head.eval()


def to_granite(encoder: TTMBackbone, head: nn.Module) -> dict[str, torch.Tensor]:
    """Our encoder + point head as a granite ``TinyTimeMixerForPrediction`` state dict."""
    state = {f"backbone.{k}": v for k, v in encoder.state_dict().items()}
    state.update(head.state_dict())
    return state
