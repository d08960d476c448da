"""Metrics against hand computations."""

import numpy as np
import pytest
import torch

from domainfm_timeseries.metrics import CRPS, MASE, SMAPE, ForecastMAE, ForecastMSE, WeightedQuantileLoss


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 6, 2, generator=g), torch.randn(4, 6, 2, generator=g)


def test_mse_mae_accumulate_over_batches():
    pred, target = data()
    mse, mae = ForecastMSE(), ForecastMAE()
    for i in (0, 2):
        mse.update(pred[i:i + 2], target[i:i + 2]), mae.update(pred[i:i + 2], target[i:i + 2])
    assert mse.compute() == pytest.approx(((pred - target) ** 2).mean().item(), rel=1e-6)
    assert mae.compute() == pytest.approx((pred - target).abs().mean().item(), rel=1e-6)


def test_point_metrics_read_the_median_of_quantile_forecasts_and_cut_the_horizon():
    pred, target = data()
    quantiles = torch.stack([pred - 1, pred, pred + 1], -1)
    longer = torch.cat([quantiles, quantiles], dim=1)  # horizon 12 against a target of 6
    mse = ForecastMSE()
    mse.update(longer, target)
    assert mse.compute() == pytest.approx(((pred - target) ** 2).mean().item(), rel=1e-6)


def test_smape():
    m = SMAPE()
    m.update(torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[3.0], [0.0]]]))
    assert m.compute() == pytest.approx((200 * 2 / 4 + 0) / 2)


def test_mase_uses_the_context_seasonal_naive_scale():
    past = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1)  # naive one-step MAE = 1
    target = torch.full((1, 3, 1), 10.0)
    m = MASE(season=1)
    m.update(target + 2, target, past=past)
    assert m.compute() == pytest.approx(2.0)
    m2 = MASE(season=2)
    m2.update(target + 2, target, batch={"past_values": past})
    assert m2.compute() == pytest.approx(1.0)


def test_weighted_quantile_loss_and_crps():
    target = torch.tensor([[[2.0], [4.0]]])
    pred = torch.tensor([[[[1.0, 2.0, 3.0]], [[3.0, 5.0, 6.0]]]])
    levels = np.array([0.1, 0.5, 0.9])
    y = target.numpy()[..., None]
    err = y - pred.numpy()
    pinball = np.maximum(levels * err, (levels - 1) * err).reshape(-1, 3).sum(0)
    wql, crps = WeightedQuantileLoss(), CRPS()
    wql.update(pred, target), crps.update(pred, target)
    assert wql.compute() == pytest.approx((2 * pinball / 6).mean(), rel=1e-6)
    assert crps.compute() == pytest.approx((2 * pinball / 2).mean(), rel=1e-6)
    # a perfect point forecast scores zero
    perfect = CRPS()
    perfect.update(target, target)
    assert perfect.compute() == 0


def test_point_metrics_take_the_median_of_the_heads_quantiles():
    pred, target = data()
    quantiles = torch.stack([pred - 1, pred + 5, pred], -1)  # levels 0.2, 0.3, 0.5
    mae = ForecastMAE(quantiles=[0.2, 0.3, 0.5])
    mae.update(quantiles, target)
    assert mae.compute() == pytest.approx((pred - target).abs().mean().item(), rel=1e-6)


def test_quantile_metrics_refuse_a_forecast_with_other_quantiles():
    from domainfm.errors import DomainfmError

    target = torch.zeros(1, 2, 1)
    with pytest.raises(DomainfmError, match="forecast has 2 quantiles, the metric expects 3"):
        WeightedQuantileLoss().update(torch.zeros(1, 2, 1, 2), target)
    ok = WeightedQuantileLoss(quantiles=[0.25, 0.75])
    ok.update(torch.zeros(1, 2, 1, 2), target + 1)
    assert ok.compute() == pytest.approx((2 * np.array([0.25 * 2, 0.75 * 2]) / 2).mean())
