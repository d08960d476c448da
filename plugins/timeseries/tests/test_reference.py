"""Parity with granite-tsfm built its own way (issue 14): stored outputs of
``TinyTimeMixerForPrediction(TinyTimeMixerConfig(...))`` with granite's defaults, written by
bench/timeseries_reference.py where granite-tsfm is installed; this test needs only the fixtures.

Each fixture's state dict is loaded as a run config naming it would be: the architecture read
from the tensors and config.json, encoder and head built by their records, the file read by the
host and loaded strictly through the ``granite`` layouts."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import domainfm
from domainfm.weights import load_part_weights
from domainfm_timeseries.granite import granite_components

FIXTURES = sorted((Path(__file__).parent / "reference").glob("granite_*.safetensors"))
TOLERANCE = 1e-5


def test_every_reference_case_is_there():
    names = {p.stem.removeprefix("granite_") for p in FIXTURES}
    assert {"default", "adaptive_prefix", "mix_channel_exogenous", "exogenous_fcm_mixer"} <= names


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem.removeprefix("granite_"))
def test_forecasts_equal_granite_tsfm_built_with_its_own_config(fixture, tmp_path):
    with safe_open(str(fixture), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    assert meta["granite-tsfm"] and json.loads(meta["overrides"]) is not None
    config = json.loads(meta["config"])
    if meta["case"] == "default":  # nothing of ours passed in: granite's own defaults
        assert json.loads(meta["overrides"]) == {}
        assert (config["context_length"], config["d_model"], config["decoder_num_layers"]) == (64, 16, 8)
    state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(config))

    host = domainfm.Host()
    parts = granite_components(tmp_path)
    encoder_record = host.get("encoder", parts["encoder"]["name"])
    encoder = encoder_record.build(preset=parts["encoder"]["preset"], **parts["encoder"]["params"])
    head_record = host.get("head", parts["head"]["name"])
    head = head_record.build(encoder, **parts["head"]["params"])
    load_part_weights(encoder, "encoder", encoder_record.weights, str(tmp_path), "granite")
    load_part_weights(head, "head", head_record.weights, str(tmp_path), "granite")
    # the same architecture: every granite tensor has a home, and nothing more
    assert sum(p.numel() for m in (encoder, head) for p in m.parameters()) == \
        sum(v.numel() for v in state.values())

    batch = {"past_values": tensors["input.past_values"]}
    if "input.freq_token" in tensors:
        batch["freq_token"] = tensors["input.freq_token"]
    if "input.future_values" in tensors:
        batch["future_exog"] = tensors["input.future_values"][..., config["exogenous_channel_indices"]]
    with torch.no_grad():
        ours = head.eval()(encoder.eval()(batch), batch)
    expected = tensors["output.prediction_outputs"]
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max().item() <= TOLERANCE
