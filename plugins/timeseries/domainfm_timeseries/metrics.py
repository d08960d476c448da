"""Forecast metrics as torchmetrics: MSE/MAE (the papers' scaled-data protocol), MASE, sMAPE,
weighted quantile loss and CRPS (from quantile forecasts).

Every metric takes the head's raw output: point forecasts (B, H, C) or quantile forecasts
(B, H, C, Q); point metrics read the median quantile of a quantile forecast. A target shorter
than the forecast is compared with the forecast's first steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from domainfm.errors import DomainfmError


def point_forecast(predictions: torch.Tensor, target: torch.Tensor,
                   quantiles: tuple[float, ...] | None = None) -> torch.Tensor:
    """The point forecast aligned with ``target``: the median quantile when there are quantiles."""
    if predictions.dim() == target.dim() + 1:
        q = predictions.shape[-1]
        mid = min(range(q), key=lambda i: abs(quantiles[i] - 0.5)) if quantiles and len(quantiles) == q else q // 2
        predictions = predictions[..., mid]
    predictions = predictions[:, :target.shape[1]]
    if predictions.shape != target.shape:
        raise DomainfmError(f"forecast shape {tuple(predictions.shape)} does not match target "
                            f"shape {tuple(target.shape)}")
    return predictions


class _SumMetric(Metric):
    """Accumulates a sum of per-element errors and a count (exact under DDP all-reduce)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def errors(self, predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, predictions: torch.Tensor, target: torch.Tensor, **_: Any) -> None:
        err = self.errors(point_forecast(predictions, target), target)
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

    The scale needs the context: pass ``batch`` (with ``past_values``, the first channels being
    the targets) or ``past`` to ``update``. Called as ``update(predictions, target)`` alone (the
    host's engine passes no batch to metrics), the seasonal-naive MAE *within the target window*
    is the scale instead: a proxy, documented as such, until metrics receive the batch.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, *, season: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if season < 1:
            raise DomainfmError(f"MASE season={season} must be >= 1")
        self.season = season
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
            raise DomainfmError(f"MASE season={self.season} needs a longer context than "
                                f"{past.shape[1]} steps")
        scale = (past[:, self.season:] - past[:, :-self.season]).abs().mean(1)  # (B, C)
        err = (point_forecast(predictions, target) - target).abs().mean(1)  # (B, C)
        ratio = err / scale.clamp_min(1e-8)
        self.total += ratio.double().sum()
        self.count += ratio.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class _QuantileMetric(Metric):
    """Sums of pinball losses per quantile level, and of |target|."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, *, quantiles: list[float] = [0.1, 0.5, 0.9], **kwargs: Any) -> None:  # noqa: B006
        super().__init__(**kwargs)
        self.quantiles = tuple(sorted(quantiles))
        self.add_state("pinball", torch.zeros(len(self.quantiles), dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("abs_target", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, target: torch.Tensor, **_: Any) -> None:
        q = len(self.quantiles)
        if predictions.dim() == target.dim():  # a point forecast stands for every quantile
            predictions = predictions[..., None].expand(*predictions.shape, q)
        if predictions.shape[-1] != q:
            raise DomainfmError(f"forecast has {predictions.shape[-1]} quantiles, the metric "
                                f"expects {q} ({list(self.quantiles)})")
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
