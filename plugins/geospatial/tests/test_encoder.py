import pytest
import torch

from domainfm.errors import DomainfmError
from domainfm_geospatial.encoder import PRESETS, build_prithvi, sincos_3d


def _batch(b=2, c=6, t=3, hw=32, **extra):
    torch.manual_seed(0)
    return {"image": torch.randn(b, c, t, hw, hw), **extra}


def test_tiny_outputs_follow_the_vocabulary():
    enc = build_prithvi("tiny").eval()
    out = enc(_batch())
    assert out["embedding"].shape == (2, enc.embed_dim)
    assert out["tokens"].shape == (2, 3 * 4 * 4, enc.embed_dim)  # T x (32/8)^2
    assert len(out["hidden_states"]) == len(enc.blocks)
    assert out["grid"] == (3, 4, 4)


@pytest.mark.parametrize("preset,dim,depth,heads,patch,frames", [
    ("eo1_100m", 768, 12, 12, 16, 3), ("eo2_100m", 768, 12, 12, 16, 4),
    ("eo2_300m", 1024, 24, 16, 16, 4), ("eo2_600m", 1280, 32, 16, 14, 4),
])
def test_presets_match_the_reference_sizes(preset, dim, depth, heads, patch, frames):
    with torch.device("meta"):  # no memory for the weights
        enc = build_prithvi(preset)
    assert (enc.embed_dim, len(enc.blocks), enc.blocks[0].attn.num_heads) == (dim, depth, heads)
    assert (enc.patch_size, enc.num_frames, enc.img_size) == (patch, frames, 224)
    assert enc.decoder_defaults == {"decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16}
    params = sum(p.numel() for p in enc.parameters())
    expected = {"eo1_100m": 86e6, "eo2_100m": 86e6, "eo2_300m": 303e6, "eo2_600m": 630e6}[preset]
    assert abs(params - expected) / expected < 0.05, params


def test_sincos_positions_split_width_height_time_and_zero_cls_row():
    pe = sincos_3d(64, (2, 3, 4))[0]
    assert pe.shape == (1 + 2 * 3 * 4, 64)
    assert torch.all(pe[0] == 0)
    tokens = pe[1:].reshape(2, 3, 4, 64)
    # the first 24 channels (6/16) vary only with width, the next 24 only with height, the rest with time
    assert torch.allclose(tokens[0, 0, :, :24], tokens[1, 2, :, :24])
    assert torch.allclose(tokens[0, :, 0, 24:48], tokens[1, :, 3, 24:48])
    assert torch.allclose(tokens[0, 0, 0, 48:], tokens[0, 2, 3, 48:])
    assert not torch.allclose(tokens[0, 0, 0, 48:], tokens[1, 0, 0, 48:])


def test_other_image_sizes_and_frame_counts_use_recomputed_positions():
    enc = build_prithvi("tiny").eval()
    out = enc(_batch(t=1, hw=48))
    assert out["grid"] == (1, 6, 6) and out["tokens"].shape[1] == 36
    four_d = enc({"image": _batch(t=1, hw=48)["image"][:, :, 0]})
    assert torch.allclose(four_d["embedding"], out["embedding"])


def test_temporal_and_location_encodings_are_used_and_required():
    enc = build_prithvi("tiny", temporal_encoding=True, location_encoding=True).eval()
    coords = torch.tensor([[[2023.0, 105.0], [2023.0, 196.0], [2023.0, 288.0]]] * 2)
    loc = torch.tensor([[28.5, -99.4]] * 2)
    a = enc(_batch(temporal_coords=coords, location_coords=loc))["embedding"]
    shifted = coords.clone()
    shifted[:, :, 1] += 30
    b = enc(_batch(temporal_coords=shifted, location_coords=loc))["embedding"]
    assert not torch.allclose(a, b)
    assert enc.temporal_embed_enc.scale.item() == pytest.approx(0.1)
    with pytest.raises(DomainfmError, match="temporal_coords.*year, day-of-year"):
        enc(_batch(location_coords=loc))
    with pytest.raises(DomainfmError, match="2 dates but the image has 3 frames"):
        enc(_batch(temporal_coords=coords[:, :2], location_coords=loc))
    with pytest.raises(DomainfmError, match="location_coords"):
        enc(_batch(temporal_coords=coords))


def test_bad_inputs_are_named():
    enc = build_prithvi("tiny")
    with pytest.raises(DomainfmError, match="4 bands but the encoder expects 6"):
        enc(_batch(c=4))
    with pytest.raises(DomainfmError, match="not a multiple of the patch size 8"):
        enc(_batch(hw=30))
    with pytest.raises(DomainfmError, match="unknown preset 'huge'"):
        build_prithvi("huge")


def test_every_preset_builds_with_the_host_schema():
    from domainfm.components import check_params

    for name, params in PRESETS.items():
        check_params(build_prithvi, params, name)
