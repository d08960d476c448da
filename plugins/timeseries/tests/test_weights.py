"""Official granite-tsfm TinyTimeMixerForPrediction state dicts load and forecast identically."""

import importlib.util

import pytest
import torch

from domainfm.host import DomainfmError
from domainfm_timeseries.encoder import build_ttm
from domainfm_timeseries.heads import build_forecast_head, build_quantile_head
from domainfm_timeseries.weights import forecaster_state, infer_config, load_granite, to_granite

# A few keys of the official r2 512-96 checkpoint, spelled as granite-tsfm writes them.
GRANITE_KEYS = [
    "backbone.encoder.patcher.weight",
    "backbone.encoder.mlp_mixer_encoder.mixers.0.mixer_layers.1.patch_mixer.norm.norm.weight",
    "backbone.encoder.mlp_mixer_encoder.mixers.0.mixer_layers.0.patch_mixer.mlp.fc1.weight",
    "backbone.encoder.mlp_mixer_encoder.mixers.2.mixer_layers.1.feature_mixer.mlp.fc2.bias",
    "backbone.encoder.mlp_mixer_encoder.mixers.1.mixer_layers.0.feature_mixer.gating_block.attn_layer.weight",
    "decoder.adapter.weight",
    "decoder.decoder_block.mixers.1.feature_mixer.mlp.fc1.weight",
    "decoder.decoder_block.mixers.0.patch_mixer.gating_block.attn_layer.bias",
    "head.base_forecast_block.weight",
]


def random_granite_state(**overrides):
    torch.manual_seed(1)
    encoder = build_ttm(preset="r2_512_96", **overrides)
    head = build_forecast_head(encoder)
    for p in [*encoder.parameters(), *head.parameters()]:  # not the default init
        p.data.normal_(0, 0.05)
    return to_granite(encoder, head), encoder.eval(), head.eval()


def test_state_dict_in_the_granite_layout_loads_and_forecasts_identically():
    state, encoder, head = random_granite_state()
    assert set(GRANITE_KEYS) <= set(state)
    assert len(state) == 134 and sum(v.numel() for v in state.values()) == 805_280
    cfg = infer_config(state)
    assert (cfg.context_length, cfg.prediction_length, cfg.patch_length, cfg.d_model,
            cfg.adaptive_patching_levels, cfg.num_layers, cfg.decoder_d_model,
            cfg.decoder_num_layers, cfg.resolution_prefix_tuning) == (512, 96, 64, 192, 3, 2,
                                                                      128, 2, False)
    loaded_encoder, loaded_head = load_granite(state)
    batch = {"past_values": torch.randn(2, 512, 3)}
    with torch.no_grad():
        torch.testing.assert_close(loaded_head(loaded_encoder(batch), batch),
                                   head(encoder(batch), batch), rtol=0, atol=0)


def test_prefix_token_checkpoint_is_recognised():
    state, _, _ = random_granite_state(resolution_prefix_tuning=True)
    assert "backbone.encoder.freq_mod.0.weight" in state
    cfg = infer_config(state)
    assert cfg.resolution_prefix_tuning and cfg.num_patches == 9 and cfg.context_length == 512


def test_files_and_errors(tmp_path):
    from safetensors.torch import save_file

    state, _, _ = random_granite_state()
    save_file(state, str(tmp_path / "model.safetensors"))
    encoder, head = load_granite(tmp_path)
    assert encoder.config.context_length == 512
    # the point weights seed every quantile of a quantile head
    q = build_quantile_head(encoder, quantiles=[0.2, 0.8], init=str(tmp_path))
    batch = {"past_values": torch.randn(1, 512, 1)}
    with torch.no_grad():
        point = head(encoder(batch), batch)
        quant = q.eval()(encoder(batch), batch)
    torch.testing.assert_close(quant[..., 0], point)
    torch.testing.assert_close(quant[..., 1], point)
    with pytest.raises(DomainfmError, match="patcher.weight' is missing"):
        load_granite({"decoder.adapter.weight": torch.zeros(1)})
    with pytest.raises(DomainfmError, match="no decoder"):
        forecaster_state({"backbone.encoder.patcher.weight": torch.zeros(1)})
    with pytest.raises(DomainfmError, match="does not exist"):
        load_granite(tmp_path / "missing.safetensors")


@pytest.mark.skipif(importlib.util.find_spec("tsfm_public") is None,
                    reason="granite-tsfm not installed (pip install --no-deps granite-tsfm==0.3.11 "
                           "transformers, in a dev environment)")
@pytest.mark.parametrize("prefix", [False, True])
def test_matches_granite_tsfm(prefix):
    from tsfm_public.models.tinytimemixer import TinyTimeMixerConfig, TinyTimeMixerForPrediction

    config = TinyTimeMixerConfig(
        context_length=512, prediction_length=96, patch_length=64, patch_stride=64, d_model=192,
        num_layers=2, adaptive_patching_levels=3, decoder_d_model=128, decoder_num_layers=2,
        expansion_factor=2, dropout=0.2, head_dropout=0.7, num_input_channels=7,
        resolution_prefix_tuning=prefix, frequency_token_vocab_size=10, scaling="std")
    torch.manual_seed(0)
    reference = TinyTimeMixerForPrediction(config).eval()
    if prefix:
        assert sum(p.numel() for p in reference.parameters()) > 805_280
    else:
        assert sum(p.numel() for p in reference.parameters()) == 805_280
    ours = to_granite(build_ttm(preset="r2_512_96", resolution_prefix_tuning=prefix),
                      build_forecast_head(build_ttm(preset="r2_512_96")))
    if not prefix:  # the same tensor names and shapes, one for one
        assert {k: v.shape for k, v in ours.items()} == \
            {k: v.shape for k, v in reference.state_dict().items()}
    encoder, head = load_granite(reference.state_dict())
    x = torch.randn(4, 512, 7) * 3 + 10
    token = torch.tensor([7, 8, 0, 5])
    with torch.no_grad():
        expected = reference(past_values=x, freq_token=token if prefix else None).prediction_outputs
        batch = {"past_values": x, "freq_token": token}
        got = head(encoder(batch), batch)
    assert (got - expected).abs().max() < 1e-5


def test_head_init_from_a_pretraining_run_folder(tmp_path):
    """A pretraining checkpoint's objective decoder + head seed a fine-tuning head (zero-shot)."""
    from domainfm_timeseries.objective import build_forecasting_objective

    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny")
    objective = build_forecasting_objective(encoder)
    state = {f"objective.{k}": v for k, v in objective.state_dict().items()}
    state.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": state}, tmp_path / "checkpoints" / "last.ckpt")
    head = build_forecast_head(encoder, init=str(tmp_path))
    for key, value in objective.forecaster.state_dict().items():
        assert torch.equal(head.state_dict()[key], value)


def test_zero_shot_evaluation_of_a_pretraining_run_through_the_host(tmp_path):
    """``evaluate`` with a head built from the pretraining run scores it without fine-tuning."""
    from domainfm import api
    from domainfm.host import get_host

    data = {"name": "timeseries.csv",
            "params": {"context_length": 64, "prediction_length": 16, "synthetic_rows": 300,
                       "batch_size": 8,  # every column a target, as the pretraining forecaster
                       "target_columns": ["load_a", "load_b", "humidity", "temperature"]}}
    run = api.pretrain({"data": data, "encoder": {"name": "timeseries.ttm", "preset": "tiny"},
                        "output_dir": str(tmp_path / "pre"), "seed": 0,
                        "trainer": {"max_steps": 3, "enable_progress_bar": False,
                                    "accelerator": "cpu", "limit_val_batches": 0}})
    head = {"name": "timeseries.forecast", "params": {"init": str(run.run_dir)}}
    result = api.evaluate({"data": data, "init": str(run.run_dir), "head": head,
                           "metrics": ["timeseries.mse"], "output_dir": str(tmp_path / "eval"),
                           "trainer": {"enable_progress_bar": False, "accelerator": "cpu"}})
    # the same score by hand: the pretraining objective's forecaster on the test windows
    model = api.load_model(run.run_dir).eval()
    dm = get_host().get("dataset", "timeseries.csv").build(**data["params"])
    dm.setup("test")
    errors = []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            forecast = model.objective.forecaster(model.encoder(batch), batch)
            errors.append(((forecast - batch["target"]) ** 2).flatten())
    assert result.metrics["test/mse"] == pytest.approx(torch.cat(errors).mean().item(), rel=1e-5)


def test_a_model_fine_tuned_from_a_head_init_loads_after_its_source_is_gone(tmp_path):
    """``head.params.init`` only seeds the first weights: loading the result never reads it."""
    import shutil

    from domainfm import api

    data = {"name": "timeseries.csv",
            "params": {"context_length": 64, "prediction_length": 16, "synthetic_rows": 300,
                       "batch_size": 8,
                       "target_columns": ["load_a", "load_b", "humidity", "temperature"]}}
    trainer = {"max_steps": 2, "enable_progress_bar": False, "accelerator": "cpu",
               "limit_val_batches": 0}
    encoder = {"name": "timeseries.ttm", "preset": "tiny"}
    pre = api.pretrain({"data": data, "encoder": encoder, "output_dir": str(tmp_path / "pre"),
                        "trainer": trainer})
    tuned = api.finetune({"data": data, "encoder": encoder, "init": str(pre.run_dir),
                          "head": {"name": "timeseries.forecast",
                                   "params": {"init": str(pre.run_dir)}},
                          "metrics": ["timeseries.mse"], "output_dir": str(tmp_path / "ft"),
                          "trainer": trainer})
    shutil.rmtree(pre.run_dir)
    model = api.load_model(tuned.run_dir)
    for key, value in tuned.module.head.state_dict().items():
        assert torch.equal(model.head.state_dict()[key], value), key
