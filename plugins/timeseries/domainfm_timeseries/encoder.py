"""TTM backbone (``timeseries.ttm``): std scaling, patching, patch embedding, adaptive mixer.

Submodule names follow granite-tsfm's ``TinyTimeMixerModel`` so an official state dict loads by
prefix (``backbone.encoder.*`` -> ``encoder.*``; see weights.py).

Shorter contexts: a context shorter than ``context_length`` is left-padded with zeros marked
unobserved in ``past_observed_mask``; the scaler ignores unobserved steps and they enter the
mixer as 0 (the scaled mean). Longer contexts are cut to the last ``context_length`` steps, as
in granite-tsfm. With a full observed context this is exactly granite's computation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from domainfm.errors import ConfigError, DomainfmError
from domainfm.records import NonNegativeInt, PositiveInt
from domainfm_timeseries.mixer import MixerStack
from domainfm_timeseries.presets import PRESETS, DropoutRate, Mode, TTMConfig


class StdScaler(nn.Module):
    """Per-window, per-channel ``(x - mean) / sqrt(var + 1e-5)`` over observed steps (all
    steps when ``observed`` is None)."""

    def __init__(self, minimum_scale: float = 1e-5) -> None:
        super().__init__()
        self.minimum_scale = minimum_scale

    def forward(self, x: torch.Tensor, observed: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        if observed is None:
            loc = x.mean(1, keepdim=True)
            scale = torch.sqrt((x - loc).pow(2).mean(1, keepdim=True) + self.minimum_scale)
            return (x - loc) / scale, loc, scale
        count = observed.sum(1, keepdim=True).clamp_min(1)
        loc = (x * observed).sum(1, keepdim=True) / count
        var = (((x - loc) * observed) ** 2).sum(1, keepdim=True) / count
        scale = torch.sqrt(var + self.minimum_scale)
        return (x - loc) / scale, loc, scale


class _Encoder(nn.Module):
    """granite's ``TinyTimeMixerEncoder``: patcher, optional freq_mod, mlp_mixer_encoder."""

    def __init__(self, cfg: TTMConfig) -> None:
        super().__init__()
        self.patcher = nn.Linear(cfg.patch_length, cfg.d_model)
        if cfg.resolution_prefix_tuning:
            mid = (cfg.patch_length + cfg.d_model) // 2
            self.freq_mod = nn.Sequential(
                nn.Embedding(cfg.frequency_token_vocab_size, cfg.patch_length),
                nn.Linear(cfg.patch_length, mid), nn.GELU(), nn.Linear(mid, cfg.d_model))
        self.mlp_mixer_encoder = MixerStack(
            levels=cfg.adaptive_patching_levels, num_layers=cfg.num_layers,
            num_patches=cfg.num_patches, d_model=cfg.d_model,
            num_channels=cfg.num_input_channels, expansion=cfg.expansion_factor,
            dropout=cfg.dropout, mode=cfg.mode)


class TTMBackbone(nn.Module):
    """``forward(batch)`` with ``past_values`` (B, L, C) -> hidden (B, C, N, D) and scaler stats.

    Optional batch keys: ``past_observed_mask`` (B, L, C), ``freq_token`` (B,) long (the
    resolution prefix token; OOV 0 when absent).
    """

    def __init__(self, cfg: TTMConfig) -> None:
        super().__init__()
        self.config = cfg.validate()
        self.embed_dim = cfg.d_model
        self.scaler = StdScaler()
        self.encoder = _Encoder(cfg)
        patches = cfg.num_patches - int(cfg.resolution_prefix_tuning)
        self._start = cfg.context_length - (cfg.patch_length + cfg.patch_stride * (patches - 1))

    def fit_context(self, past: torch.Tensor, observed: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cut or left-pad (B, L, C) to ``context_length``; padding is marked unobserved.
        ``observed`` stays None when every step is observed."""
        if past.dim() != 3:
            raise DomainfmError(f"timeseries.ttm: past_values must be (batch, time, channels), "
                                f"got shape {tuple(past.shape)}")
        cfg = self.config
        if cfg.mode == "mix_channel" and past.shape[-1] != cfg.num_input_channels:
            raise DomainfmError(f"timeseries.ttm (mix_channel) was built for "
                                f"{cfg.num_input_channels} channels, got {past.shape[-1]}")
        length = past.shape[1]
        if length < cfg.context_length and observed is None:
            observed = torch.ones_like(past)
        if length > cfg.context_length:
            past = past[:, -cfg.context_length:]
            observed = None if observed is None else observed[:, -cfg.context_length:]
        elif length < cfg.context_length:
            pad = cfg.context_length - length
            past = nn.functional.pad(past, (0, 0, pad, 0))
            observed = nn.functional.pad(observed, (0, 0, pad, 0))
        return past, None if observed is None else observed.to(past.dtype)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        past, observed = self.fit_context(batch["past_values"], batch.get("past_observed_mask"))
        scaled, loc, scale = self.scaler(past, observed)
        if observed is not None:
            scaled = scaled * observed
        # (B, L, C) -> (B, C, N, patch_length), keeping the last patches
        patches = scaled[:, self._start:].unfold(1, cfg.patch_length, cfg.patch_stride)
        patches = patches.transpose(1, 2)
        hidden = self.encoder.patcher(patches)
        if cfg.resolution_prefix_tuning:
            token = batch.get("freq_token")
            if token is None:
                token = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
            prefix = self.encoder.freq_mod(token.long().reshape(-1))
            prefix = prefix[:, None, None, :].expand(-1, hidden.shape[1], 1, -1)
            hidden = torch.cat([prefix, hidden], dim=2)
        hidden, states = self.encoder.mlp_mixer_encoder(hidden)
        b, c, n, d = hidden.shape
        return {
            "hidden": hidden,
            "tokens": hidden.reshape(b, c * n, d),
            "embedding": hidden.mean(dim=(1, 2)),
            "hidden_states": [s.reshape(b, c * n, d) for s in states],
            "loc": loc, "scale": scale,
            "past_values": past, "patch_input": patches,
        }


def config_from(preset: str, **overrides: Any) -> TTMConfig:
    """A preset's config with the overrides that are not None."""
    if preset not in PRESETS:
        raise ConfigError(f"timeseries.ttm: unknown preset {preset!r}; valid presets: "
                          f"{', '.join(sorted(PRESETS))}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return replace(TTMConfig(), **values)


def build_ttm(*, preset: str = "tiny", context_length: PositiveInt | None = None,
              prediction_length: PositiveInt | None = None, patch_length: PositiveInt | None = None,
              patch_stride: PositiveInt | None = None, d_model: PositiveInt | None = None,
              num_layers: PositiveInt | None = None,
              adaptive_patching_levels: NonNegativeInt | None = None,
              expansion_factor: PositiveInt | None = None, dropout: DropoutRate | None = None,
              mode: Mode | None = None, num_input_channels: PositiveInt | None = None,
              resolution_prefix_tuning: bool | None = None,
              frequency_token_vocab_size: PositiveInt | None = None,
              decoder_d_model: PositiveInt | None = None,
              decoder_num_layers: PositiveInt | None = None, decoder_mode: Mode | None = None,
              head_dropout: DropoutRate | None = None) -> TTMBackbone:
    """Build the TTM backbone; ``None`` keeps the preset's value.

    The decoder settings (``decoder_*``, ``prediction_length``, ``head_dropout``) travel with the
    encoder so the forecasting head and objective build the matching decoder by default.
    """
    overrides = {k: v for k, v in locals().items() if k != "preset"}
    return TTMBackbone(config_from(preset, **overrides))
