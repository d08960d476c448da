"""Official Prithvi checkpoints loaded through the host's weights path (read, map keys with the
record's ``prithvi`` layout, load strictly)."""

import logging

import pytest
import torch
from safetensors.torch import save_file

from domainfm.errors import WeightsError
from domainfm.host import Host
from domainfm.weights import load_part_weights
from domainfm_geospatial.encoder import build_prithvi, sincos_3d
from domainfm_geospatial.objective import build_mae
from domainfm_geospatial.weights import layout_of

HOST = Host()
LAYOUTS = {part: HOST.get(part, name).weights
           for part, name in (("encoder", "geospatial.prithvi"), ("objective", "geospatial.mae"))}


def load_prithvi(model, state, tmp_path, part="encoder", **params):
    """``state`` written as an official checkpoint file, loaded into ``model`` by the host."""
    path = tmp_path / "checkpoint.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    load_part_weights(model, part, LAYOUTS[part], str(path), "prithvi", params)


def _official(layout: str, **kwargs):
    """A model and its weights written the way the official checkpoints store them."""
    torch.manual_seed(1)
    source = build_prithvi("tiny", **kwargs)
    decoder = build_mae(source)
    pos = sincos_3d(source.embed_dim, (3, 4, 4)).clone()
    enc = {**source.state_dict(), "pos_embed": pos}
    dec = {**decoder.state_dict(), "decoder_pos_embed": sincos_3d(64, (3, 4, 4)).clone()}
    if layout == "EO-2.0":
        state = {**{f"encoder.{k}": v for k, v in enc.items()},
                 **{f"decoder.{k}": v for k, v in dec.items()}}
    else:  # EO-1.0: one flat namespace, decoder keys beside the encoder's
        state = {**enc, **dec}
    return source.eval(), state


def _batch(c=6):
    torch.manual_seed(0)
    return {"image": torch.randn(2, c, 3, 32, 32)}


@pytest.mark.parametrize("layout", ["EO-2.0", "EO-1.0"])
def test_both_layouts_load_exactly(layout, tmp_path, caplog):
    source, state = _official(layout)
    target = build_prithvi("tiny").eval()
    assert not torch.allclose(target(_batch())["embedding"], source(_batch())["embedding"])
    with caplog.at_level(logging.WARNING):
        load_prithvi(target, state, tmp_path)
    assert layout_of(state) == layout and "keep their initialisation" not in caplog.text
    assert torch.equal(target(_batch())["embedding"], source(_batch())["embedding"])


@pytest.mark.parametrize("layout", ["EO-2.0", "EO-1.0"])
def test_mae_decoder_loads_from_both_layouts(layout, tmp_path):
    torch.manual_seed(1)
    source = build_prithvi("tiny", temporal_encoding=True)
    decoder = build_mae(source)
    _, state = _official(layout, temporal_encoding=True)
    target = build_mae(build_prithvi("tiny", temporal_encoding=True))
    load_prithvi(target, state, tmp_path, part="objective")
    prefix = "decoder." if layout == "EO-2.0" else ""
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[prefix + key]), key
    assert set(target.state_dict()) == set(decoder.state_dict())


def test_mae_decoder_prediction_maps_bands_by_name(tmp_path):
    _, state = _official("EO-2.0")
    target = build_mae(build_prithvi("tiny", bands=["RED", "NIR_NARROW", "VV"]))
    init = target.decoder_pred.weight.detach().clone()
    load_prithvi(target, state, tmp_path, part="objective")
    per_pixel = 8 * 8  # tubelet 1 x patch 8 x 8, bands fastest
    w = target.decoder_pred.weight.reshape(per_pixel, 3, -1)
    src = state["decoder.decoder_pred.weight"].reshape(per_pixel, 6, -1)
    assert torch.equal(w[:, 0], src[:, 2]) and torch.equal(w[:, 1], src[:, 3])
    assert torch.equal(w[:, 2], init.reshape(per_pixel, 3, -1)[:, 2])


def test_temporal_location_scales_load_from_eo2_tl_layout(tmp_path):
    source, state = _official("EO-2.0", temporal_encoding=True, location_encoding=True)
    assert "encoder.temporal_embed_enc.scale" in state and "decoder.location_embed_dec.scale" in state
    target = build_prithvi("tiny", temporal_encoding=True, location_encoding=True)
    load_prithvi(target, state, tmp_path)
    assert torch.equal(target.location_embed_enc.scale, source.location_embed_enc.scale)


def test_band_subset_maps_patch_embedding_by_name(caplog, tmp_path):
    source, state = _official("EO-2.0")
    torch.manual_seed(2)
    target = build_prithvi("tiny", bands=["RED", "NIR_NARROW", "VV"])
    init = target.patch_embed.proj.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        load_prithvi(target, state, tmp_path)
    w, src = target.patch_embed.proj.weight, source.patch_embed.proj.weight
    assert torch.equal(w[:, 0], src[:, 2]) and torch.equal(w[:, 1], src[:, 3])
    assert torch.equal(w[:, 2], init[:, 2])  # VV is not in the checkpoint: keeps its init
    assert "bands ['VV'] are not in the checkpoint" in caplog.text
    assert torch.equal(target.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight)


def test_missing_or_unexpected_keys_fail_and_leave_the_model_untouched(tmp_path):
    _, state = _official("EO-2.0")
    del state["encoder.blocks.0.attn.qkv.weight"]
    state["encoder.head.weight"] = torch.zeros(1)
    target = build_prithvi("tiny")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError) as err:
        load_prithvi(target, state, tmp_path)
    message = str(err.value)
    assert "missing keys (1): ['blocks.0.attn.qkv.weight']" in message
    assert "unexpected keys (1): ['head.weight']" in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_wrong_size_and_wrong_options_fail_loudly(tmp_path):
    _, state = _official("EO-2.0")
    with pytest.raises(WeightsError, match="pos_embed width differs from embed_dim 128"):
        load_prithvi(build_prithvi("tiny", embed_dim=128), state, tmp_path)
    with pytest.raises(WeightsError, match="missing keys \\(1\\): \\['temporal_embed_enc.scale'\\]"):
        load_prithvi(build_prithvi("tiny", temporal_encoding=True), state, tmp_path)
    with pytest.raises(WeightsError, match=r"shape mismatch \(6\): .*blocks.0.mlp.fc1.weight: file \(256, 64\) vs model \(128, 64\)"):
        load_prithvi(build_prithvi("tiny", mlp_ratio=2.0), state, tmp_path)
    with pytest.raises(WeightsError, match="none of the model's bands \\(VV, VH\\)"):
        load_prithvi(build_prithvi("tiny", bands=["VV", "VH"]), state, tmp_path)
    with pytest.raises(WeightsError, match="patch embedding has 6 input bands but the layout's `bands` lists 3"):
        load_prithvi(build_prithvi("tiny"), state, tmp_path, bands=["RED", "GREEN", "BLUE"])


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_build_with_weights_file(tmp_path, suffix):
    source, state = _official("EO-2.0")
    path = tmp_path / f"Prithvi_EO_V2{suffix}"
    if suffix == ".pt":
        torch.save({"model": state}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)

    def build(weights: str):
        model = build_prithvi("tiny")
        load_part_weights(model, "encoder", LAYOUTS["encoder"], weights)  # the first layout
        return model.eval()

    loaded = build(str(path))
    assert torch.equal(loaded(_batch())["embedding"], source(_batch())["embedding"])
    with pytest.raises(WeightsError, match="does not exist"):
        build(str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(WeightsError, match="junk.pt is unreadable"):
        build(str(tmp_path / "junk.pt"))


def test_a_model_built_from_official_weights_loads_after_the_file_is_gone(tmp_path):
    """``weights`` only seeds the encoder: a saved model never reads the checkpoint again."""
    from domainfm import api

    _, state = _official("EO-2.0")
    path = tmp_path / "Prithvi_EO_V2.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    run = api.finetune({
        "data": {"name": "geospatial.water",
                 "params": {"places": 4, "size": 32, "chip_size": 32, "batch_size": 2}},
        "encoder": {"name": "geospatial.prithvi", "preset": "tiny",
                    "weights": {"path": str(path), "layout": "prithvi"}},
        "output_dir": str(tmp_path / "run"),
        "trainer": {"max_steps": 1, "enable_progress_bar": False, "accelerator": "cpu",
                    "limit_val_batches": 0}})
    path.unlink()
    model = api.load_model(run.run_dir)
    for key, value in run.module.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
