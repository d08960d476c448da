import logging

import pytest
import torch
from safetensors.torch import save_file

from domainfm_geospatial.encoder import build_prithvi, sincos_3d
from domainfm_geospatial.objective import build_mae
from domainfm_geospatial.weights import WeightsError, load_prithvi


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
def test_both_layouts_load_exactly(layout):
    source, state = _official(layout)
    target = build_prithvi("tiny").eval()
    assert not torch.allclose(target(_batch())["embedding"], source(_batch())["embedding"])
    report = load_prithvi(target, state)
    assert report["layout"] == [layout] and report["initialised_bands"] == []
    assert torch.equal(target(_batch())["embedding"], source(_batch())["embedding"])


def test_temporal_location_scales_load_from_eo2_tl_layout():
    source, state = _official("EO-2.0", temporal_encoding=True, location_encoding=True)
    assert "encoder.temporal_embed_enc.scale" in state and "decoder.location_embed_dec.scale" in state
    target = build_prithvi("tiny", temporal_encoding=True, location_encoding=True)
    load_prithvi(target, state)
    assert torch.equal(target.location_embed_enc.scale, source.location_embed_enc.scale)


def test_band_subset_maps_patch_embedding_by_name(caplog):
    source, state = _official("EO-2.0")
    torch.manual_seed(2)
    target = build_prithvi("tiny", bands=["RED", "NIR_NARROW", "VV"])
    init = target.patch_embed.proj.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        report = load_prithvi(target, state)
    w, src = target.patch_embed.proj.weight, source.patch_embed.proj.weight
    assert torch.equal(w[:, 0], src[:, 2]) and torch.equal(w[:, 1], src[:, 3])
    assert torch.equal(w[:, 2], init[:, 2])  # VV is not in the checkpoint: keeps its init
    assert report["initialised_bands"] == ["VV"] and "VV" in caplog.text
    assert torch.equal(target.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight)


def test_missing_or_unexpected_keys_fail_and_leave_the_model_untouched():
    _, state = _official("EO-2.0")
    del state["encoder.blocks.0.attn.qkv.weight"]
    state["encoder.head.weight"] = torch.zeros(1)
    target = build_prithvi("tiny")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError) as err:
        load_prithvi(target, state)
    message = str(err.value)
    assert "1 missing: ['blocks.0.attn.qkv.weight']" in message
    assert "1 unexpected: ['head.weight']" in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_wrong_size_and_wrong_options_fail_loudly():
    _, state = _official("EO-2.0")
    with pytest.raises(WeightsError, match="pos_embed width differs from embed_dim 128"):
        load_prithvi(build_prithvi("tiny", embed_dim=128), state)
    with pytest.raises(WeightsError, match="missing: \\['temporal_embed_enc.scale'\\]"):
        load_prithvi(build_prithvi("tiny", temporal_encoding=True), state)
    with pytest.raises(WeightsError, match=r"6 mis-shaped: .*blocks.0.mlp.fc1.weight: checkpoint \(256, 64\) vs model \(128, 64\)"):
        load_prithvi(build_prithvi("tiny", mlp_ratio=2.0), state)
    with pytest.raises(WeightsError, match="none of the model's bands \\(VV, VH\\)"):
        load_prithvi(build_prithvi("tiny", bands=["VV", "VH"]), state)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_build_with_weights_file(tmp_path, suffix):
    source, state = _official("EO-2.0")
    path = tmp_path / f"Prithvi_EO_V2{suffix}"
    if suffix == ".pt":
        torch.save({"model": state}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    loaded = build_prithvi("tiny", weights=str(path)).eval()
    assert torch.equal(loaded(_batch())["embedding"], source(_batch())["embedding"])
    with pytest.raises(WeightsError, match="does not exist"):
        build_prithvi("tiny", weights=str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(WeightsError, match="junk.pt is not a readable checkpoint"):
        build_prithvi("tiny", weights=str(tmp_path / "junk.pt"))


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
                    "params": {"weights": str(path)}},
        "output_dir": str(tmp_path / "run"),
        "trainer": {"max_steps": 1, "enable_progress_bar": False, "accelerator": "cpu",
                    "limit_val_batches": 0}})
    path.unlink()
    model = api.load_model(run.run_dir)
    for key, value in run.module.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
