"""Pretraining objective ``timeseries.forecasting``: TTM is pretrained by forecasting itself.

The objective owns a decoder + forecast head (granite layout under ``forecaster.``) and scores
the forecast of ``batch["target"]`` from ``batch["past_values"]``; pretraining mixes many
series at several resolutions (see data/mixture.py). A forecast head seeded from a pretraining
run (``head: {name: timeseries.forecast, weights: RUN}``) takes this decoder + head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domainfm.records import PositiveInt
from domainfm_timeseries.encoder import TTMBackbone
from domainfm_timeseries.heads import ForecastHead, PointLoss


class ForecastingObjective(nn.Module):
    def __init__(self, encoder: TTMBackbone, *, loss: PointLoss = "mse",
                 prediction_length: int | None = None) -> None:
        super().__init__()
        self.forecaster = ForecastHead(encoder, loss=loss, prediction_length=prediction_length)

    def forward(self, encoder: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        forecast = self.forecaster(encoder(batch), batch)
        loss = self.forecaster.loss(forecast, batch)
        with torch.no_grad():
            mae = (forecast[:, :batch["target"].shape[1]] - batch["target"]).abs().mean()
        return {"loss": loss, "mae": mae}


def build_forecasting_objective(encoder: TTMBackbone, *, loss: PointLoss = "mse",
                                prediction_length: PositiveInt | None = None
                                ) -> ForecastingObjective:
    """Forecasting loss (mse, mae or huber) of a fresh decoder + head on the encoder; the
    horizon is the data's (``prediction_length`` from its specification) or the encoder's."""
    return ForecastingObjective(encoder, loss=loss, prediction_length=prediction_length)
