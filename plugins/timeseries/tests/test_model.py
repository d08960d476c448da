"""The TTM backbone and heads: the reference parameter count, shapes, contexts and horizons."""

import pytest
import torch

from domainfm.errors import DomainfmError
from domainfm_timeseries.encoder import build_ttm
from domainfm_timeseries.heads import build_forecast_head, build_quantile_head
from domainfm_timeseries.objective import build_forecasting_objective


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_r2_512_96_has_the_reference_parameter_count():
    # granite r2 512-96: prefix token off, 3 adaptive levels x 2 layers, decoder 128 x 2
    encoder = build_ttm(preset="r2_512_96")
    assert count(encoder, build_forecast_head(encoder)) == 805_280
    # the prefix token adds granite's freq_mod embedding + MLP and one more patch
    with_prefix = build_ttm(preset="r2_512_96", resolution_prefix_tuning=True)
    assert count(with_prefix, build_forecast_head(with_prefix)) > 805_280
    assert with_prefix.config.num_patches == 9


def test_forward_shapes_and_vocabulary():
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny").eval()
    head = build_forecast_head(encoder).eval()
    batch = {"past_values": torch.randn(3, 64, 5)}
    features = encoder(batch)
    assert features["embedding"].shape == (3, encoder.embed_dim)
    assert features["tokens"].shape == (3, 5 * encoder.config.num_patches, encoder.embed_dim)
    assert head(features, batch).shape == (3, 16, 5)


def test_forecasts_are_scale_equivariant():
    """Per-window std scaling: forecasting a*x+b gives a*f(x)+b."""
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny").eval()
    head = build_forecast_head(encoder).eval()
    x = torch.randn(2, 64, 3)
    f = head(encoder({"past_values": x}), {})
    g = head(encoder({"past_values": 5 * x + 100}), {})
    torch.testing.assert_close(g, 5 * f + 100, rtol=1e-4, atol=1e-3)


def test_shorter_context_is_padded_and_masked_longer_is_cut():
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny").eval()
    head = build_forecast_head(encoder).eval()
    x = torch.randn(1, 100, 2)
    long = head(encoder({"past_values": x}), {})
    cut = head(encoder({"past_values": x[:, -64:]}), {})
    torch.testing.assert_close(long, cut)
    short = x[:, -40:]
    out = head(encoder({"past_values": short}), {})
    assert out.shape == (1, 16, 2) and torch.isfinite(out).all()
    # the padding is invisible: its values do not matter, only the observed 40 steps do
    padded = torch.cat([torch.full((1, 24, 2), 1e3), short], dim=1)
    mask = torch.cat([torch.zeros(1, 24, 2), torch.ones(1, 40, 2)], dim=1)
    same = head(encoder({"past_values": padded, "past_observed_mask": mask}), {})
    torch.testing.assert_close(out, same)


def test_shorter_horizon_keeps_the_first_steps():
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny").eval()
    full = build_forecast_head(encoder).eval()
    short = build_forecast_head(encoder, prediction_filter_length=5).eval()
    short.load_state_dict(full.state_dict())
    batch = {"past_values": torch.randn(2, 64, 1)}
    torch.testing.assert_close(short(encoder(batch), batch), full(encoder(batch), batch)[:, :5])
    # a target shorter than the horizon is scored on the first steps
    target = {"target": torch.zeros(2, 7, 1)}
    assert full.loss(full(encoder(batch), batch), target).isfinite()
    with pytest.raises(DomainfmError, match="prediction_filter_length"):
        build_forecast_head(encoder, prediction_filter_length=17)


def test_mix_channel_and_exogenous_infusion():
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny", mode="mix_channel", num_input_channels=4).eval()
    head = build_forecast_head(encoder, prediction_channels=[0, 1], exogenous_channels=[3],
                               decoder_mode="mix_channel").eval()
    batch = {"past_values": torch.randn(2, 64, 4), "future_exog": torch.randn(2, 16, 1)}
    out = head(encoder(batch), batch)
    assert out.shape == (2, 16, 2)
    # the known future of the exogenous channel changes the forecast
    other = dict(batch, future_exog=batch["future_exog"] + 3)
    assert not torch.allclose(out, head(encoder(other), other))
    with pytest.raises(DomainfmError, match="future_exog"):
        head(encoder(batch), {"past_values": batch["past_values"]})
    with pytest.raises(DomainfmError, match="built for 4 channels"):
        encoder({"past_values": torch.randn(2, 64, 3)})


def test_resolution_prefix_token_changes_the_forecast():
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny", resolution_prefix_tuning=True).eval()
    head = build_forecast_head(encoder).eval()
    x = torch.randn(1, 64, 1)
    hourly = head(encoder({"past_values": x, "freq_token": torch.tensor([7])}), {})
    daily = head(encoder({"past_values": x, "freq_token": torch.tensor([8])}), {})
    assert not torch.allclose(hourly, daily)


def test_quantile_head_learns_a_band_with_pinball_loss():
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny")
    head = build_quantile_head(encoder, quantiles=[0.1, 0.5, 0.9])
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-2)
    t = torch.arange(80, dtype=torch.float32)
    base = torch.sin(2 * torch.pi * t / 16)
    for _ in range(60):
        noise = torch.randn(32, 80)
        series = (base + 0.5 * noise)[..., None]
        batch = {"past_values": series[:, :64], "target": series[:, 64:]}
        loss = head.loss(head(encoder(batch), batch), batch)
        opt.zero_grad(), loss.backward(), opt.step()
    head.eval(), encoder.eval()
    series = (base + 0.5 * torch.randn(512, 80))[..., None]
    batch = {"past_values": series[:, :64], "target": series[:, 64:]}
    pred = head(encoder(batch), batch)
    assert pred.shape == (512, 16, 1, 3)
    assert (pred[..., 0] <= pred[..., 1]).all() and (pred[..., 1] <= pred[..., 2]).all()
    inside = ((batch["target"] >= pred[..., 0]) & (batch["target"] <= pred[..., 2])).float().mean()
    assert 0.6 < inside < 0.95  # nominal 80% interval


def test_objective_owns_a_decoder_not_the_encoder():
    encoder = build_ttm(preset="tiny")
    objective = build_forecasting_objective(encoder)
    assert not any(p is q for p in objective.parameters() for q in encoder.parameters())
    batch = {"past_values": torch.randn(2, 64, 1), "target": torch.randn(2, 16, 1)}
    out = objective(encoder, batch)
    assert out["loss"].ndim == 0 and out["mae"] > 0


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_cpu_dropout_keeps_the_configured_rate_and_the_mean(p):
    from domainfm_timeseries.mixer import Dropout

    torch.manual_seed(0)
    x = torch.ones(400_000)
    out = Dropout(p).train()(x)
    kept = out != 0
    assert abs(1 - kept.float().mean().item() - p) < 3e-3  # 4.6 sigma at n = 400k
    assert out[kept].unique().tolist() == pytest.approx([1 / (1 - p)], rel=1e-4)
    assert abs(out.mean().item() - 1) < 6e-3
    assert torch.equal(Dropout(p).eval()(x), x)


def test_mixing_along_an_axis_equals_moving_it_last():
    from domainfm_timeseries.mixer import linear_along

    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 16)
    x = torch.randn(6, 8, 5)
    expected = layer(x.transpose(-1, -2)).transpose(-1, -2)
    assert torch.allclose(linear_along(layer, x, -2), expected, atol=1e-6)
    assert torch.allclose(linear_along(layer, x.transpose(-1, -2), -1), expected.transpose(-1, -2),
                          atol=1e-6)


def test_the_head_horizon_follows_the_data_and_checks_its_channels():
    """The host fills ``prediction_length`` from the data; channel indices must exist."""
    encoder = build_ttm(preset="tiny")
    head = build_forecast_head(encoder, prediction_length=24, prediction_channels=[0, 1],
                               exogenous_channels=[3]).eval()
    batch = {"past_values": torch.randn(2, 64, 4), "future_exog": torch.randn(2, 24, 1)}
    assert head(encoder(batch), batch).shape == (2, 24, 2)
    with pytest.raises(DomainfmError, match=r"reads channels \[0, 1, 3\] .* input has 3"):
        head(encoder({"past_values": torch.randn(2, 64, 3)}), batch)
    objective = build_forecasting_objective(encoder, prediction_length=24)
    assert objective.forecaster.prediction_length == 24
