"""Forecast metrics as torchmetrics: MSE/MAE (the papers' scaled-data protocol), MASE, sMAPE,
weighted quantile loss and CRPS (from quantile forecasts).

Every metric takes the head's raw output: point forecasts (B, H, C) or quantile forecasts
(B, H, C, Q); point metrics read the median quantile of a quantile forecast. A target shorter
than the forecast is compared with the forecast's first steps.

``quantiles`` left unset in the config takes the head's value (the host fills a metric's
parameters from the head's resolved ones), else the quantile head's default: metrics and head
always agree on the levels.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from domainfm.errors import ConfigError, DataError
from domainfm.records import PositiveInt
from domainfm_timeseries.presets import DEFAULT_QUANTILES, Quantile

Quantiles = list[Quantile]


def point_forecast(predictions: torch.Tensor, target: torch.Tensor,
                   quantiles: tuple[float, ...] | None = None) -> torch.Tensor:
    """The point forecast aligned with ``target``: the median quantile when there are quantiles."""
    if predictions.dim() == target.dim() + 1:
        q = predictions.shape[-1]
        mid = min(range(q), key=lambda i: abs(quantiles[i] - 0.5)) if quantiles and len(quantiles) == q else q // 2
        predictions = predictions[..., mid]
    predictions = predictions[:, :target.shape[1]]
    if predictions.shape != target.shape:
        raise DataError(f"forecast shape {tuple(predictions.shape)} does not match target "
                        f"shape {tuple(target.shape)}")
    return predictions


class _SumMetric(Metric):
    """Accumulates a sum of per-element errors and a count (exact under DDP all-reduce)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, *, quantiles: Quantiles | None = None) -> None:
        super().__init__()
        self.quantiles = tuple(sorted(quantiles or DEFAULT_QUANTILES))
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def errors(self, predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, predictions: torch.Tensor, target: torch.Tensor, **_: Any) -> None:
        err = self.errors(point_forecast(predictions, target, self.quantiles), target)
        self.total += err.double().sum()
        self.count += err.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class ForecastMSE(_SumMetric):
    def errors(self, predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (predictions - target) ** 2


class ForecastMAE(_SumMetric):
    def errors(self, predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (predictions - target).abs()


class SMAPE(_SumMetric):
    """Symmetric MAPE in percent, 200 |y - f| / (|y| + |f|); 0 where both are 0."""

    def errors(self, predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        denom = predictions.abs() + target.abs()
        return torch.where(denom > 0, 200 * (predictions - target).abs() / denom.clamp_min(1e-12),
                           torch.zeros_like(denom))


class MASE(Metric):
    """MAE over the in-sample seasonal-naive MAE of each window's context, averaged over windows.

    The scale needs the context: the engine passes ``batch`` (with ``past_values``, the first
    channels being the targets), or pass ``past`` to ``update``. Called as
    ``update(predictions, target)`` alone, the seasonal-naive MAE *within the target window* is
    the scale instead (a proxy).
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, *, season: PositiveInt = 1, quantiles: Quantiles | None = None) -> None:
        super().__init__()
        if season < 1:
            raise ConfigError(f"MASE season={season} must be >= 1")
        self.season = season
        self.quantiles = tuple(sorted(quantiles or DEFAULT_QUANTILES))
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, target: torch.Tensor,
               batch: dict[str, Any] | None = None, past: torch.Tensor | None = None) -> None:
        if past is None and batch is not None and "past_values" in batch:
            past = batch["past_values"]
        if past is None:
            past = target
        past = past[..., :target.shape[-1]]
        if past.shape[1] <= self.season:
            raise DataError(f"MASE season={self.season} needs a longer context than "
                            f"{past.shape[1]} steps")
        scale = (past[:, self.season:] - past[:, :-self.season]).abs().mean(1)  # (B, C)
        err = (point_forecast(predictions, target, self.quantiles) - target).abs().mean(1)  # (B, C)
        ratio = err / scale.clamp_min(1e-8)
        self.total += ratio.double().sum()
        self.count += ratio.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class _QuantileMetric(Metric):
    """Sums of pinball losses per quantile level, and of |target|."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, *, quantiles: Quantiles | None = None) -> None:
        super().__init__()
        self.quantiles = tuple(sorted(quantiles or DEFAULT_QUANTILES))
        self.add_state("pinball", torch.zeros(len(self.quantiles), dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("abs_target", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, target: torch.Tensor, **_: Any) -> None:
        q = len(self.quantiles)
        if predictions.dim() == target.dim():  # a point forecast stands for every quantile
            predictions = predictions[..., None].expand(*predictions.shape, q)
        if predictions.shape[-1] != q:
            raise DataError(f"forecast has {predictions.shape[-1]} quantiles, the metric "
                            f"expects {q} ({list(self.quantiles)}): set the quantiles on the head "
                            "only, the metrics take them from it")
        predictions = predictions[:, :target.shape[1]]
        levels = torch.tensor(self.quantiles, device=target.device, dtype=predictions.dtype)
        error = target[..., None] - predictions
        loss = torch.maximum(levels * error, (levels - 1) * error)
        self.pinball += loss.double().reshape(-1, q).sum(0)
        self.abs_target += target.double().abs().sum()
        self.count += target.numel()


class WeightedQuantileLoss(_QuantileMetric):
    """Mean over levels of 2 * sum(pinball_q) / sum(|y|) (GluonTS ``mean_wQuantileLoss``)."""

    def compute(self) -> torch.Tensor:
        return (2 * self.pinball / self.abs_target.clamp_min(1e-12)).mean().float()


class CRPS(_QuantileMetric):
    """CRPS approximated by the mean over quantile levels of twice the mean pinball loss."""

    def compute(self) -> torch.Tensor:
        return (2 * self.pinball / self.count.clamp_min(1)).mean().float()
