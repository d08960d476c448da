"""Forecasting heads: TTM's decoder + linear forecast head, point or quantile.

``decoder.*`` and ``head.*`` follow granite-tsfm's ``TinyTimeMixerForPrediction`` so the
official decoder and head load by name (the ``granite`` layout in weights.py). The head reads
the backbone's config for the decoder's defaults, so ``build(encoder)`` gives the decoder of the
chosen preset; first weights come from the config's ``head.weights``, never a build parameter.

Horizons: the head forecasts ``prediction_length`` steps (the data's horizon when the host
builds it); ``prediction_filter_length`` (or a target shorter than the horizon) keeps the first
steps only, as granite-tsfm does.
Exogenous infusion: ``exogenous_channels`` (indices into the input channels whose future values
are known, passed as ``batch["future_exog"]`` (B, H, E)) enables granite's forecast channel
mixing block after the head; ``prediction_channels`` choose which channels are forecast. Both
come from the data specification (``timeseries.csv`` puts targets first, known-future
exogenous columns last).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from domainfm.errors import ConfigError, DataError
from domainfm.records import NonNegativeInt, PositiveInt
from domainfm_timeseries.encoder import TTMBackbone
from domainfm_timeseries.mixer import Dropout, GatedAttention, MixerStack
from domainfm_timeseries.presets import DEFAULT_QUANTILES, DropoutRate, Mode, Quantile

PointLoss = Literal["mse", "mae", "huber"]
Channels = list[NonNegativeInt]


class Decoder(nn.Module):
    """``adapter`` d_model -> decoder_d_model, then ``decoder_block`` mixer layers."""

    def __init__(self, *, d_model: int, decoder_d_model: int, num_layers: int, num_patches: int,
                 num_channels: int, expansion: int, dropout: float, mode: Mode) -> None:
        super().__init__()
        self.adapter = nn.Linear(d_model, decoder_d_model) if d_model != decoder_d_model else None
        self.decoder_block = MixerStack(levels=0, num_layers=num_layers, num_patches=num_patches,
                                        d_model=decoder_d_model, num_channels=num_channels,
                                        expansion=expansion, dropout=dropout, mode=mode)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.adapter is not None:
            hidden = self.adapter(hidden)
        return self.decoder_block(hidden)[0]


class ForecastChannelMixer(nn.Module):
    """granite's ``fcm_block``: reconcile forecasts across channels, infusing known exogenous.

    Each forecast step is patched with ``context`` neighbours on either side (the last context
    steps of the past before the first), flattened over channels, gated and mapped back to the
    forecast channels; the result is added to the base forecast.
    """

    def __init__(self, *, prediction_length: int, num_forecast: int, num_exog: int,
                 context: int = 1, use_mixer: bool = False, mix_layers: int = 2,
                 dropout: float = 0.0, expansion: int = 2, gated: bool = True) -> None:
        super().__init__()
        self.context, self.width = context, 2 * context + 1
        total = num_forecast + num_exog
        features = self.width
        if use_mixer:
            features = self.width * 2
            self.fcm_embedding = nn.Linear(self.width, features)
            self.exog_mixer = MixerStack(levels=0, num_layers=mix_layers, num_patches=total,
                                         d_model=features, num_channels=prediction_length,
                                         expansion=expansion, dropout=dropout,
                                         mode="common_channel")
        self.mlp = nn.Linear(total * features, num_forecast)
        self.fcm_gating_block = GatedAttention(total * features) if gated else None

    def forward(self, base: torch.Tensor, past_forecast: torch.Tensor, past_exog: torch.Tensor,
                future_exog: torch.Tensor | None) -> torch.Tensor:
        """base (B, H, F) scaled forecasts; past_* (B, L, .) raw context; future_exog (B, H, E)."""
        x, past = base, past_forecast
        if future_exog is not None:
            x = torch.cat([base, future_exog], dim=-1)
            past = torch.cat([past_forecast, past_exog], dim=-1)
        if self.context > 0:
            pad = x.new_zeros(x.shape[0], self.context, x.shape[-1])
            x = torch.cat([past[:, -self.context:], x, pad], dim=1)
            x = x.unfold(1, self.width, 1)  # (B, H, channels, width)
            if hasattr(self, "fcm_embedding"):
                x = self.exog_mixer(self.fcm_embedding(x))[0]
            x = x.flatten(2)
        if self.fcm_gating_block is not None:
            x = self.fcm_gating_block(x)
        return self.mlp(x) + base


class _Head(nn.Module):
    """granite's ``TinyTimeMixerForPredictionHead``: flatten, dropout, linear to the horizon."""

    def __init__(self, in_features: int, prediction_length: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.base_forecast_block = nn.Linear(in_features, prediction_length)


class ForecastHead(nn.Module):
    """``forward(features, batch)`` -> forecasts (B, H, C_pred) in the input's units."""

    quantiles: tuple[float, ...] = ()

    def __init__(self, encoder: TTMBackbone, *, prediction_length: int | None = None,
                 prediction_filter_length: int | None = None,
                 prediction_channels: list[int] | None = None,
                 exogenous_channels: list[int] | None = None,
                 decoder_d_model: int | None = None, decoder_num_layers: int | None = None,
                 decoder_mode: Mode | None = None, head_dropout: float | None = None,
                 fcm_context_length: int = 1, fcm_use_mixer: bool = False,
                 loss: PointLoss = "mse") -> None:
        super().__init__()
        cfg = encoder.config
        self.prediction_length = prediction_length or cfg.prediction_length
        self.filter_length = prediction_filter_length
        if self.filter_length is not None and not 0 < self.filter_length <= self.prediction_length:
            raise ConfigError(f"prediction_filter_length={self.filter_length} must be in "
                              f"(0, prediction_length={self.prediction_length}]")
        channels = cfg.num_input_channels
        self.exogenous = sorted(exogenous_channels or [])
        if prediction_channels is None and self.exogenous:
            prediction_channels = [i for i in range(channels) if i not in self.exogenous]
        self.prediction = sorted(prediction_channels) if prediction_channels is not None else None
        if any(i < 0 for i in (self.prediction or []) + self.exogenous) or (
                set(self.prediction or []) & set(self.exogenous)):
            raise ConfigError(f"prediction_channels={self.prediction} and exogenous_channels="
                              f"{self.exogenous} must be disjoint non-negative channel indices")
        self.loss_name = loss
        dropout = cfg.head_dropout if head_dropout is None else head_dropout
        dd = decoder_d_model or cfg.decoder_d_model
        self.decoder = Decoder(
            d_model=cfg.d_model, decoder_d_model=dd,
            num_layers=decoder_num_layers or cfg.decoder_num_layers,
            num_patches=cfg.num_patches, num_channels=channels, expansion=cfg.expansion_factor,
            dropout=dropout, mode=decoder_mode or cfg.decoder_mode)
        self.head = _Head(cfg.num_patches * dd, self.prediction_length * self._outputs(), dropout)
        if self.exogenous:
            horizon = self.filter_length or self.prediction_length
            n_forecast = len(self.prediction)
            self.head.fcm_block = ForecastChannelMixer(
                prediction_length=horizon, num_forecast=n_forecast, num_exog=len(self.exogenous),
                context=fcm_context_length, use_mixer=fcm_use_mixer, dropout=dropout,
                expansion=cfg.expansion_factor)

    def _outputs(self) -> int:
        return 1

    def _check_channels(self, channels: int) -> None:
        used = (self.prediction or []) + self.exogenous
        if used and max(used) >= channels:
            raise DataError(f"the head reads channels {sorted(used)} (prediction_channels "
                            f"{self.prediction}, exogenous_channels {self.exogenous}) but the "
                            f"input has {channels} channel(s)")

    def scaled_forecast(self, features: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor:
        """Forecast in the backbone's per-window scaled space, (B, H, C_pred[, Q])."""
        self._check_channels(features["hidden"].shape[1])
        hidden = self.decoder(features["hidden"])
        flat = self.head.dropout(hidden.flatten(-2))
        out = self.head.base_forecast_block(flat)  # (B, C, H * outputs)
        b, c = out.shape[:2]
        out = out.reshape(b, c, self._outputs(), self.prediction_length).permute(0, 3, 1, 2)
        if self.prediction is not None:
            out = out[:, :, self.prediction]
        if self.filter_length is not None:
            out = out[:, :self.filter_length]
        if self.exogenous:
            future = batch.get("future_exog")
            if future is None:
                raise DataError("this head infuses exogenous channels "
                                f"{self.exogenous}: the batch needs 'future_exog' "
                                "(batch, horizon, exogenous channels)")
            horizon = out.shape[1]
            if future.shape[1] < horizon or future.shape[-1] != len(self.exogenous):
                raise DataError(f"future_exog has shape {tuple(future.shape)}, expected "
                                f"(batch, >= {horizon}, {len(self.exogenous)})")
            past = features["past_values"]
            pred_idx = self.prediction if self.prediction is not None else slice(None)
            out = torch.stack([self.head.fcm_block(out[..., q], past[..., pred_idx],
                                                   past[..., self.exogenous],
                                                   future[:, :horizon].to(out.dtype))
                               for q in range(out.shape[-1])], dim=-1)
        return out

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor:
        out = self.scaled_forecast(features, batch)
        loc, scale = features["loc"], features["scale"]
        if self.prediction is not None:
            loc, scale = loc[..., self.prediction], scale[..., self.prediction]
        out = out * scale[..., None] + loc[..., None]
        return out.squeeze(-1) if self._outputs() == 1 else out

    def loss(self, predictions: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        target = batch["target"]
        predictions = predictions[:, :target.shape[1]]
        if predictions.shape != target.shape:
            raise DataError(f"forecast shape {tuple(predictions.shape)} does not match target "
                            f"{tuple(target.shape)}: check prediction_channels and horizon")
        mask = batch.get("future_observed_mask")
        if mask is not None:
            keep = mask[:, :target.shape[1]].bool()
            predictions, target = predictions[keep], target[keep]
        if self.loss_name == "mae":
            return nn.functional.l1_loss(predictions, target)
        if self.loss_name == "huber":
            return nn.functional.huber_loss(predictions, target)
        return nn.functional.mse_loss(predictions, target)


class QuantileForecastHead(ForecastHead):
    """Quantile forecasts (B, H, C_pred, Q) trained with the pinball loss.

    ``base_forecast_block`` emits one horizon per quantile; quantiles are sorted so they never
    cross. Point weights (granite, or a point head) loaded through the ``granite`` layout fill
    every quantile with the point forecast: a few-shot fine-tune then learns the spread.
    """

    def __init__(self, encoder: TTMBackbone, *, quantiles: list[float] = DEFAULT_QUANTILES,
                 **params: Any) -> None:
        if not quantiles or any(not 0 < q < 1 for q in quantiles):
            raise ConfigError(f"quantiles={quantiles} must be a non-empty list in (0, 1)")
        self.quantiles = tuple(sorted(quantiles))
        super().__init__(encoder, **params)
        self.register_buffer("levels", torch.tensor(self.quantiles), persistent=False)

    def _outputs(self) -> int:
        return len(self.quantiles)

    def forward(self, features: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor:
        return super().forward(features, batch).sort(dim=-1).values

    def loss(self, predictions: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        target = batch["target"]
        predictions = predictions[:, :target.shape[1]]
        if predictions.shape[:-1] != target.shape:
            raise DataError(f"forecast shape {tuple(predictions.shape[:-1])} does not match "
                            f"target {tuple(target.shape)}: check prediction_channels and horizon")
        return pinball_loss(predictions, target, self.levels)


def pinball_loss(predictions: torch.Tensor, target: torch.Tensor, levels: torch.Tensor
                 ) -> torch.Tensor:
    """Mean quantile (pinball) loss of (..., Q) predictions against (...) targets."""
    error = target[..., None] - predictions
    return torch.maximum(levels * error, (levels - 1) * error).mean()


def build_forecast_head(encoder: TTMBackbone, *, prediction_length: PositiveInt | None = None,
                        prediction_filter_length: PositiveInt | None = None,
                        prediction_channels: Channels | None = None,
                        exogenous_channels: Channels | None = None,
                        decoder_d_model: PositiveInt | None = None,
                        decoder_num_layers: PositiveInt | None = None,
                        decoder_mode: Mode | None = None, head_dropout: DropoutRate | None = None,
                        fcm_context_length: NonNegativeInt = 1, fcm_use_mixer: bool = False,
                        loss: PointLoss = "mse") -> ForecastHead:
    """Point forecasting head. ``prediction_length`` and the channel indices come from the data
    specification when unset; decoder settings default to the encoder's."""
    return ForecastHead(encoder, prediction_length=prediction_length,
                        prediction_filter_length=prediction_filter_length,
                        prediction_channels=prediction_channels,
                        exogenous_channels=exogenous_channels, decoder_d_model=decoder_d_model,
                        decoder_num_layers=decoder_num_layers, decoder_mode=decoder_mode,
                        head_dropout=head_dropout, fcm_context_length=fcm_context_length,
                        fcm_use_mixer=fcm_use_mixer, loss=loss)


def build_quantile_head(encoder: TTMBackbone, *,
                        quantiles: list[Quantile] = DEFAULT_QUANTILES,  # noqa: B006 - never mutated
                        prediction_length: PositiveInt | None = None,
                        prediction_filter_length: PositiveInt | None = None,
                        prediction_channels: Channels | None = None,
                        exogenous_channels: Channels | None = None,
                        decoder_d_model: PositiveInt | None = None,
                        decoder_num_layers: PositiveInt | None = None,
                        decoder_mode: Mode | None = None,
                        head_dropout: DropoutRate | None = None) -> QuantileForecastHead:
    """Quantile head (pinball loss); the quantile metrics take ``quantiles`` from it."""
    return QuantileForecastHead(encoder, quantiles=quantiles, prediction_length=prediction_length,
                                prediction_filter_length=prediction_filter_length,
                                prediction_channels=prediction_channels,
                                exogenous_channels=exogenous_channels,
                                decoder_d_model=decoder_d_model,
                                decoder_num_layers=decoder_num_layers, decoder_mode=decoder_mode,
                                head_dropout=head_dropout)
