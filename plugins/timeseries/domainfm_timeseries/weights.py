"""Official checkpoints: granite-tsfm ``TinyTimeMixerForPrediction`` state dicts.

Our modules use granite's names, so conversion is a prefix split: ``backbone.*`` is the encoder
(``timeseries.ttm``), ``decoder.*`` + ``head.*`` the forecast head. The architecture is read
from the tensors' shapes (and ``config.json`` beside the weights when present), so every TTM
revision (r1, r2, r2.1; any context/horizon; prefix token or not) loads without a preset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from domainfm.errors import DomainfmError
from domainfm_timeseries.encoder import TTMBackbone, TTMConfig
from domainfm_timeseries.heads import ForecastHead

_FORECASTER = re.compile(
    r"((?:decoder\.(?:adapter|decoder_block)|head\.(?:base_forecast_block|fcm_block))\..+)$")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors / .bin / .pt / Lightning .ckpt file, a folder holding one, or a
    domainfm run folder (its ``checkpoints/last.ckpt``)."""
    path = Path(path)
    if path.is_dir() and (path / "checkpoints" / "last.ckpt").is_file() \
            and not any((path / name).is_file() for name in _WEIGHT_FILES):
        path = path / "checkpoints" / "last.ckpt"
    if path.is_dir():
        found = [path / name for name in _WEIGHT_FILES if (path / name).is_file()]
        if not found:
            raise DomainfmError(f"{path}: no {' or '.join(_WEIGHT_FILES)} in this folder")
        path = found[0]
    if not path.is_file():
        raise DomainfmError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:  # Lightning checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DomainfmError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def forecaster_state(source: str | Path | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``decoder.*``/``head.*`` tensors of a granite, export or checkpoint state dict."""
    state = source if isinstance(source, dict) else read_state_dict(source)
    out = {}
    for key, value in state.items():
        match = _FORECASTER.search(key)
        if match:
            out[match.group(1)] = value
    if not out:
        raise DomainfmError(f"{source if not isinstance(source, dict) else 'state dict'}: no "
                            "decoder.*/head.* forecaster weights found")
    return out


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """granite ``backbone.encoder.*`` -> our encoder's ``encoder.*``."""
    return {k[len("backbone."):]: v for k, v in state.items()
            if k.startswith("backbone.encoder.")}


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def infer_config(state: dict[str, torch.Tensor], config: dict[str, Any] | None = None
                 ) -> TTMConfig:
    """The TTMConfig that a granite state dict was built with (config.json values win)."""
    config = dict(config or {})
    enc = "backbone.encoder."
    if f"{enc}patcher.weight" not in state:
        raise DomainfmError("not a TinyTimeMixerForPrediction state dict: "
                            f"'{enc}patcher.weight' is missing")
    d_model, patch_length = state[f"{enc}patcher.weight"].shape
    levels = _count(state, re.escape(enc) + r"mlp_mixer_encoder\.mixers\.(\d+)\.mixer_layers")
    last = f"{enc}mlp_mixer_encoder.mixers.{max(levels - 1, 0)}."
    layer = f"{last}mixer_layers.0." if levels else f"{enc}mlp_mixer_encoder.mixers.0."
    num_layers = (_count(state, re.escape(f"{last}mixer_layers.") + r"(\d+)\.") if levels
                  else _count(state, re.escape(f"{enc}mlp_mixer_encoder.mixers.") + r"(\d+)\."))
    fc1 = state[f"{layer}feature_mixer.mlp.fc1.weight"]
    expansion = fc1.shape[0] // fc1.shape[1]
    prefix = f"{enc}freq_mod.0.weight" in state
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
    horizon = state["head.base_forecast_block.weight"].shape[0]
    return TTMConfig(
        context_length=int(config.get("context_length", context)), prediction_length=horizon,
        patch_length=patch_length, patch_stride=stride, d_model=d_model, num_layers=num_layers,
        adaptive_patching_levels=levels, expansion_factor=expansion,
        dropout=float(config.get("dropout", 0.2)),
        mode="mix_channel" if mix in state else "common_channel",
        num_input_channels=channels, resolution_prefix_tuning=prefix,
        frequency_token_vocab_size=(state[f"{enc}freq_mod.0.weight"].shape[0] if prefix else 10),
        decoder_d_model=dec_d, decoder_num_layers=dec_layers,
        decoder_mode="mix_channel" if dec_mix else "common_channel",
        head_dropout=float(config.get("head_dropout", 0.7)))


def load_granite(source: str | Path | dict[str, torch.Tensor],
                 config: dict[str, Any] | None = None) -> tuple[TTMBackbone, ForecastHead]:
    """Encoder and forecast head holding an official TTM checkpoint, in eval mode.

    ``source`` is a state dict, a weights file or a Hugging Face snapshot folder (its
    ``config.json`` supplies channel indices for exogenous infusion).
    """
    if not isinstance(source, dict):
        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        if config is None and (folder / "config.json").is_file():
            config = json.loads((folder / "config.json").read_text())
        source = read_state_dict(source)
    config = config or {}
    cfg = infer_config(source, config)
    encoder = TTMBackbone(cfg)
    missing, unexpected = encoder.load_state_dict(backbone_state(source), strict=False)
    if missing or unexpected:
        raise DomainfmError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")
    head = ForecastHead(encoder, prediction_channels=config.get("prediction_channel_indices"),
                        exogenous_channels=config.get("exogenous_channel_indices"),
                        prediction_filter_length=config.get("prediction_filter_length"),
                        fcm_context_length=int(config.get("fcm_context_length", 1)),
                        fcm_use_mixer=bool(config.get("fcm_use_mixer", False)))
    missing, unexpected = head.load_state_dict(forecaster_state(source), strict=False)
    if missing or unexpected:
        raise DomainfmError(f"decoder/head weights do not fit: missing {missing}, "
                            f"unexpected {unexpected}")
    return encoder.eval(), head.eval()


def to_granite(encoder: TTMBackbone, head: ForecastHead) -> dict[str, torch.Tensor]:
    """Our encoder + point head as a granite ``TinyTimeMixerForPrediction`` state dict."""
    state = {f"backbone.{k}": v for k, v in encoder.state_dict().items()}
    state.update(head.state_dict())
    return state
