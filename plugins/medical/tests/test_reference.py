"""Parity with the BM-MAE reference code (issue 14), without the reference installed.

The fixtures under ``reference/`` were written by ``bench/medical_reference.py generate`` from
the reference's own ``ViTEncoder``/``MRITokenizer`` (and its full ViT-B ``BMMAE`` layout); their
metadata names the reference repository and commit. Our encoder reads the reference state dict
through the host's weights reader and the ``bmmae`` layout, as a user's config would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import domainfm
from domainfm.weights import key_difference, load_part_weights

FIXTURES = Path(__file__).resolve().parent / "reference"
MODALITIES = ["t1", "t1ce", "t2", "flair"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def host():
    return domainfm.Host()


def test_reference_fixtures_state_their_origin() -> None:
    with safe_open(FIXTURES / "bmmae_tiny.safetensors", "pt") as f:
        info = f.metadata()
    assert "BM-MAE" in info["reference"] and len(info["commit"]) == 40
    assert json.loads((FIXTURES / "bmmae_base_layout.json").read_text())["info"]["commit"] == info["commit"]


@pytest.mark.parametrize("names", [MODALITIES, ["t1", "flair"]], ids=["all", "t1+flair"])
def test_encoder_matches_the_reference_within_1e5(host, names: list[str]) -> None:
    shape = json.loads(safe_open(FIXTURES / "bmmae_tiny.safetensors", "pt").metadata()["shape"])
    record = host.get("encoder", "medical.bmmae")
    torch.manual_seed(0)
    encoder = record.build(preset="tiny", img_size=shape["img_size"], patch_size=shape["patch_size"],
                           embed_dim=shape["hidden_size"], depth=shape["num_layers"],
                           num_heads=shape["num_heads"], mlp_dim=shape["mlp_dim"]).eval()
    load_part_weights(encoder, "encoder", record.weights, str(FIXTURES / "bmmae_tiny.safetensors"), "bmmae")
    io = load_file(FIXTURES / "bmmae_tiny_io.safetensors")
    x = io["input"]
    with torch.no_grad():
        out = encoder({m: x[:, MODALITIES.index(m): MODALITIES.index(m) + 1] for m in names})
    ours = torch.cat([out["embedding"][:, None], out["tokens"]], 1)
    expected = io["output.all" if len(names) == 4 else "output.t1+flair"]
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max().item() <= TOLERANCE


def test_reference_vit_b_layout_maps_onto_base_without_a_key_difference(host) -> None:
    """The released model's layout (reference BMMAE, ViT-B, encoder and decoder) fits
    ``medical.bmmae`` base and ``medical.multimodal_mae`` exactly, key by key and shape by shape."""
    keys = json.loads((FIXTURES / "bmmae_base_layout.json").read_text())["keys"]
    state = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    encoder_record = host.get("encoder", "medical.bmmae")
    objective_record = host.get("objective", "medical.multimodal_mae")
    with torch.device("meta"):
        encoder = encoder_record.build(preset="base")
        objective = objective_record.build(encoder)
    for record, module in ((encoder_record, encoder), (objective_record, objective)):
        mapped = record.weights["bmmae"](state, module)
        assert key_difference(module.state_dict(), mapped) == ""
    assert not any("norm_cross_attn" in k for k in keys)  # saved with MONAI < 1.4 blocks
