"""granite-tsfm ``TinyTimeMixerForPrediction`` state dicts load (their architecture read from the
tensors) and forecast identically; the ``granite`` layouts seed heads and objectives through the
host's weights path (the one a run config's ``weights`` takes)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

import domainfm
from domainfm.errors import DomainfmError
from domainfm.weights import load_part_weights
from domainfm_timeseries.encoder import build_ttm
from domainfm_timeseries.granite import granite_components, infer_config, load_granite, to_granite
from domainfm_timeseries.heads import build_forecast_head, build_quantile_head
from domainfm_timeseries.objective import build_forecasting_objective

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
TINY_DATA = {"context_length": 64, "prediction_length": 16, "synthetic_rows": 300, "batch_size": 8}


def layouts(kind, name):
    """The layouts a record maps, as the host hands them to its weights loader."""
    return domainfm.Host().get(kind, name).weights


def random_granite_state(preset="r2_512_96", **overrides):
    torch.manual_seed(1)
    encoder = build_ttm(preset=preset, **overrides)
    head = build_forecast_head(encoder)
    for p in [*encoder.parameters(), *head.parameters()]:  # not the default init
        p.data.normal_(0, 0.05)
    return to_granite(encoder, head), encoder.eval(), head.eval()


def snapshot(folder, state, config=None):
    """A Hugging Face style folder: model.safetensors (+ config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_state_dict_in_the_granite_layout_loads_and_forecasts_identically(tmp_path):
    state, encoder, head = random_granite_state()
    assert set(GRANITE_KEYS) <= set(state)
    assert len(state) == 134 and sum(v.numel() for v in state.values()) == 805_280
    cfg = infer_config(state)
    assert (cfg.context_length, cfg.prediction_length, cfg.patch_length, cfg.d_model,
            cfg.adaptive_patching_levels, cfg.num_layers, cfg.decoder_d_model,
            cfg.decoder_num_layers, cfg.resolution_prefix_tuning) == (512, 96, 64, 192, 3, 2,
                                                                      128, 2, False)
    loaded_encoder, loaded_head = load_granite(snapshot(tmp_path / "ttm", state))
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
    state, _, _ = random_granite_state()
    folder = snapshot(tmp_path / "ttm", state)
    encoder, head = load_granite(folder)
    assert encoder.config.context_length == 512
    # the point weights seed every quantile of a quantile head
    q = build_quantile_head(encoder, quantiles=[0.2, 0.8])
    load_part_weights(q, "head", layouts("head", "timeseries.quantile_forecast"), str(folder))
    batch = {"past_values": torch.randn(1, 512, 1)}
    with torch.no_grad():
        point = head(encoder(batch), batch)
        quant = q.eval()(encoder(batch), batch)
    torch.testing.assert_close(quant[..., 0], point)
    torch.testing.assert_close(quant[..., 1], point)
    bad = tmp_path / "bad.safetensors"
    save_file({"decoder.adapter.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(DomainfmError, match="patcher.weight' is missing"):
        load_granite(bad)
    save_file({"backbone.encoder.patcher.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(DomainfmError, match="no decoder"):
        load_part_weights(head, "head", layouts("head", "timeseries.forecast"), str(bad))
    with pytest.raises(DomainfmError, match="does not exist"):
        load_granite(tmp_path / "missing.safetensors")
    short = build_forecast_head(encoder, prediction_length=24)
    with pytest.raises(DomainfmError, match=r"96 outputs, this head needs 24 .*prediction_length"):
        load_part_weights(short, "head", layouts("head", "timeseries.forecast"), str(folder))


def test_exogenous_head_keeps_its_own_channel_mixer_and_the_objective_takes_the_forecaster(tmp_path):
    state, encoder, head = random_granite_state("tiny")
    folder = snapshot(tmp_path / "ttm", state)
    torch.manual_seed(3)
    infused = build_forecast_head(encoder, prediction_channels=[0, 1], exogenous_channels=[3])
    fresh = {k: v.clone() for k, v in infused.state_dict().items() if k.startswith("head.fcm_block.")}
    load_part_weights(infused, "head", layouts("head", "timeseries.forecast"), str(folder))
    own = infused.state_dict()
    assert fresh and all(torch.equal(own[k], v) for k, v in fresh.items())
    assert all(torch.equal(own[k], v) for k, v in head.state_dict().items())
    objective = build_forecasting_objective(encoder)
    load_part_weights(objective, "objective", layouts("objective", "timeseries.forecasting"),
                      str(folder))
    for key, value in head.state_dict().items():
        assert torch.equal(objective.forecaster.state_dict()[key], value), key


def test_head_weights_from_a_pretraining_checkpoint(tmp_path):
    """A pretraining checkpoint's objective decoder + head seed a fine-tuning head (zero-shot)."""
    torch.manual_seed(0)
    encoder = build_ttm(preset="tiny")
    objective = build_forecasting_objective(encoder)
    state = {f"objective.{k}": v for k, v in objective.state_dict().items()}
    state.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
    save_file(state, str(tmp_path / "pretrained.safetensors"))
    head = build_forecast_head(encoder)
    load_part_weights(head, "head", layouts("head", "timeseries.forecast"),
                      str(tmp_path / "pretrained.safetensors"))
    for key, value in objective.forecaster.state_dict().items():
        assert torch.equal(head.state_dict()[key], value)


def test_a_granite_checkpoint_fine_tunes_through_the_host(tmp_path):
    """``granite_components`` turns a checkpoint of any architecture into run-config entries;
    the host reads it and a frozen (linear-probe) encoder keeps the checkpoint's weights."""
    state, encoder, _ = random_granite_state("tiny")
    folder = snapshot(tmp_path / "ttm", state, config={"patch_stride": 8})
    parts = granite_components(folder)
    assert parts["encoder"]["params"]["d_model"] == 16 and parts["encoder"]["params"]["context_length"] == 64
    data = {"name": "timeseries.csv", "params": TINY_DATA}
    result = domainfm.finetune({
        "data": data, **parts, "mode": "linear-probe", "metrics": ["timeseries.mse"],
        "output_dir": str(tmp_path / "ft"),
        "trainer": {"max_steps": 2, "enable_progress_bar": False, "accelerator": "cpu",
                    "limit_val_batches": 1}})
    tuned = result.module.encoder.state_dict()
    for key, value in encoder.state_dict().items():
        assert torch.equal(tuned[key], value), key
    assert result.spec.provenance.weights == {"encoder": str(folder), "head": str(folder)}


@pytest.mark.skipif(__import__("importlib").util.find_spec("tsfm_public") is None,
                    reason="granite-tsfm not installed (see bench/timeseries_reference.py)")
@pytest.mark.parametrize("prefix", [False, True])
def test_matches_granite_tsfm(prefix, tmp_path):
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
    encoder, head = load_granite(snapshot(tmp_path / "ref", dict(reference.state_dict())))
    x = torch.randn(4, 512, 7) * 3 + 10
    token = torch.tensor([7, 8, 0, 5])
    with torch.no_grad():
        expected = reference(past_values=x, freq_token=token if prefix else None).prediction_outputs
        batch = {"past_values": x, "freq_token": token}
        got = head(encoder(batch), batch)
    assert (got - expected).abs().max() < 1e-5


def test_zero_shot_evaluation_of_a_pretraining_run_through_the_host(tmp_path):
    """``evaluate`` with a head seeded from the pretraining run scores it without fine-tuning."""
    data = {"name": "timeseries.csv",
            "params": {**TINY_DATA,  # every column a target, as the pretraining forecaster
                       "target_columns": ["load_a", "load_b", "humidity", "temperature"]}}
    run = domainfm.pretrain({"data": data, "encoder": {"name": "timeseries.ttm", "preset": "tiny"},
                             "output_dir": str(tmp_path / "pre"), "seed": 0,
                             "trainer": {"max_steps": 3, "enable_progress_bar": False,
                                         "accelerator": "cpu", "limit_val_batches": 0}})
    head = {"name": "timeseries.forecast", "weights": str(run.run_dir)}
    result = domainfm.evaluate({"data": data, "init": str(run.run_dir), "head": head,
                                "metrics": ["timeseries.mse"], "output_dir": str(tmp_path / "eval"),
                                "trainer": {"enable_progress_bar": False, "accelerator": "cpu"}})
    # the same score by hand: the pretraining objective's forecaster on the test windows
    model = domainfm.load_model(run.run_dir).eval()
    dm = domainfm.Host().get("dataset", "timeseries.csv").build(**data["params"])
    dm.setup("test")
    errors = []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            forecast = model.objective.forecaster(model.encoder(batch), batch)
            errors.append(((forecast - batch["target"]) ** 2).flatten())
    assert result.metrics["test/mse"] == pytest.approx(torch.cat(errors).mean().item(), rel=1e-5)


def test_a_model_fine_tuned_from_head_weights_loads_after_its_source_is_gone(tmp_path):
    """``head.weights`` only seeds the first weights: loading the result never reads it."""
    data = {"name": "timeseries.csv",
            "params": {**TINY_DATA,
                       "target_columns": ["load_a", "load_b", "humidity", "temperature"]}}
    trainer = {"max_steps": 2, "enable_progress_bar": False, "accelerator": "cpu",
               "limit_val_batches": 0}
    encoder = {"name": "timeseries.ttm", "preset": "tiny"}
    pre = domainfm.pretrain({"data": data, "encoder": encoder, "output_dir": str(tmp_path / "pre"),
                             "trainer": trainer})
    tuned = domainfm.finetune({"data": data, "encoder": encoder, "init": str(pre.run_dir),
                               "head": {"name": "timeseries.forecast", "weights": str(pre.run_dir)},
                               "metrics": ["timeseries.mse"], "output_dir": str(tmp_path / "ft"),
                               "trainer": trainer})
    shutil.rmtree(pre.run_dir)
    model = domainfm.load_model(tuned.run_dir)
    for key, value in tuned.module.head.state_dict().items():
        assert torch.equal(model.head.state_dict()[key], value), key


def test_quantile_metrics_take_the_heads_quantiles_through_the_host(tmp_path):
    """A quantile head with two levels: wql/crps would refuse a 2-quantile forecast with their
    3 default levels, so a finished run shows the host handed them the head's quantiles."""
    result = domainfm.finetune({  # one batch per epoch, so the one step ends with validation
        "data": {"name": "timeseries.csv", "params": {**TINY_DATA, "batch_size": 256}},
        "encoder": {"name": "timeseries.ttm", "preset": "tiny"},
        "head": {"name": "timeseries.quantile_forecast", "params": {"quantiles": [0.25, 0.75]}},
        "metrics": ["timeseries.wql", "timeseries.crps", "timeseries.mae"],
        "output_dir": str(tmp_path / "q"),
        "trainer": {"max_steps": 1, "enable_progress_bar": False, "accelerator": "cpu",
                    "limit_val_batches": 1}})
    assert {"val/wql", "val/crps", "val/mae"} <= set(result.metrics)
    assert all(v == v for v in result.metrics.values())  # finite, not NaN
