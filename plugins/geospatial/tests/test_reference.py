"""Parity with TerraTorch's Prithvi from stored reference outputs (TerraTorch not needed).

The fixture under ``reference/`` was written by ``bench/geospatial_reference.py --fixture`` in an
environment with TerraTorch (its version is in the files' metadata): a tiny config of
TerraTorch's own ``PrithviViT`` class, everything else at its defaults (LayerNorm eps 1e-5),
random weights, with and without temporal/location encodings, and its
``forward_features(x)[-1]``. Here its state dict goes through the host's weights path with our
``prithvi`` layout and our encoder must reproduce the stored output.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from domainfm.host import Host
from domainfm.weights import load_part_weights
from domainfm_geospatial.encoder import build_prithvi

FIXTURES = Path(__file__).parent / "reference"
TOLERANCE = 1e-5
LAYOUTS = Host().get("encoder", "geospatial.prithvi").weights


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def _ours(name: str, **overrides):
    """Our tiny preset at the fixture's shapes, its reference weights loaded by the host."""
    path = FIXTURES / f"prithvi_tiny_{name}.safetensors"
    kwargs = json.loads(_metadata(path)["kwargs"])
    model = build_prithvi("tiny", img_size=kwargs["img_size"], patch_size=kwargs["patch_size"][-1],
                          num_frames=kwargs["num_frames"], embed_dim=kwargs["embed_dim"],
                          depth=kwargs["depth"], num_heads=kwargs["num_heads"],
                          temporal_encoding="time" in kwargs.get("coords_encoding", []),
                          location_encoding="location" in kwargs.get("coords_encoding", []),
                          **overrides)
    load_part_weights(model, "encoder", LAYOUTS, str(path), "prithvi")  # strict
    return model.eval()


def _output(model, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    io = load_file(str(FIXTURES / "prithvi_tiny_io.safetensors"))
    tensors = {k.split(".", 1)[1]: v for k, v in io.items() if k.startswith(f"{name}.")}
    batch = {"image": tensors["x"], **{k: tensors[k] for k in ("temporal_coords", "location_coords")
                                       if k in tensors}}
    with torch.no_grad():
        out = model(batch)
    return torch.cat([out["cls"][:, None], out["tokens"]], dim=1), tensors["output"]


def test_the_fixture_states_its_reference():
    for name in ("plain", "tl"):
        meta = _metadata(FIXTURES / f"prithvi_tiny_{name}.safetensors")
        assert meta["reference"] == "terratorch 1.2.11"
        assert meta["constructor"] == "terratorch.models.backbones.prithvi_mae.PrithviViT"
        assert meta["script"] == "bench/geospatial_reference.py"


@pytest.mark.parametrize("name", ["plain", "tl"])
def test_terratorch_weights_reproduce_terratorch_output(name):
    ours, reference = _output(_ours(name), name)
    assert ours.shape == reference.shape
    assert float((ours - reference).abs().max()) <= TOLERANCE


def test_the_fixture_tells_the_layernorm_eps():
    """The original EO-1.0 fine-tuning eps (1e-6) is not TerraTorch's: the fixture sees it."""
    ours, reference = _output(_ours("plain", norm_eps=1e-6), "plain")
    assert float((ours - reference).abs().max()) > 10 * TOLERANCE
