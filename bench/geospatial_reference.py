"""Parity of ``geospatial.prithvi`` with TerraTorch's Prithvi, built the way TerraTorch builds it.

The reference is TerraTorch 1.2.11 (``REFERENCE``), in its own environment: it is never given
our settings. For each official preset it is built by TerraTorch's own backbone factory
(``prithvi_eo_v1_100``, ``prithvi_eo_v2_300``, ...; ``_create_prithvi`` for the config without
a public factory) from its own config dicts (``prithvi_cfgs``: widths, depths, heads, patch
size, frames, coordinate encodings, ``norm_layer=nn.LayerNorm``),
with ``pretrained=False`` and only the image size reduced (CPU cost; the weights do not depend
on it); its random weights are perturbed by seeded noise so that every tensor, biases and norms
included, differs from its initial value. The reference process writes the state dict, the
input and TerraTorch's ``forward_features(x)[-1]`` (with temporal and location coordinates for
the TL models); this process loads the state dict through the host's weights path with our
``prithvi`` layout (strict: any missing, unexpected or mis-shaped key fails), runs our encoder
and reports the largest absolute difference (tolerance 1e-5). The full-size (224 px) key and
shape layout of each reference is compared with ours on the meta device.

With ``--fixture`` the reference also writes the small test fixture of
``plugins/geospatial/tests/test_reference.py``: a tiny config of TerraTorch's own ``PrithviViT``
class (constructed directly, as its users do, everything else at TerraTorch's defaults), with
and without temporal/location encodings: its state dicts, and the input and output tensors.

Reference environment (once): ``python -m venv .venv-bench-geospatial &&
.venv-bench-geospatial/bin/pip install terratorch==1.2.11``. Then, from the project's
environment::

    .venv/bin/python bench/geospatial_reference.py --reference-python .venv-bench-geospatial/bin/python [--fixture]

(``--reference-only DIR`` is what runs inside the reference environment; it imports no domainfm.)
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "plugins" / "geospatial" / "tests" / "reference"
REFERENCE = "terratorch==1.2.11"
TOLERANCE = 1e-5
# row -> (our preset, our overrides, TerraTorch's config in prithvi_cfgs). Each is built by
# TerraTorch's backbone factory of that name; prithvi_eo_v2_100 (no TL) has a config but no
# public factory in 1.2.11, so it is built by the helper every factory calls, _create_prithvi.
PRESETS = {
    "eo1_100m": ("eo1_100m", {}, "prithvi_eo_v1_100"),
    "eo2_tiny_tl": ("eo2_tiny_tl", {}, "prithvi_eo_v2_tiny_tl"),
    "eo2_100m": ("eo2_100m", {}, "prithvi_eo_v2_100"),
    "eo2_100m_tl": ("eo2_100m", {"temporal_encoding": True, "location_encoding": True},
                    "prithvi_eo_v2_100_tl"),
    "eo2_300m": ("eo2_300m", {}, "prithvi_eo_v2_300"),
    "eo2_600m": ("eo2_600m", {}, "prithvi_eo_v2_600"),
}
GRID = 4  # reduced image: 4 x 4 patches per frame
# the fixture: TerraTorch's own PrithviViT class, a tiny config, its defaults for the rest
TINY = {"img_size": 16, "patch_size": [1, 4, 4], "num_frames": 2, "in_chans": 6,
        "embed_dim": 32, "depth": 2, "num_heads": 2}
TINY_TL = {**TINY, "coords_encoding": ["time", "location"], "coords_scale_learn": True}


# --------------------------------------------------------------------------- reference side


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Seeded noise on every parameter and buffer, so that no bias, norm or scale keeps its
    constant initial value: 10% of a tensor's own spread, or 0.02 for a constant tensor (the
    weights keep their initialisation's scale, so activations stay as well conditioned)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith("pos_embed"):
                continue  # fixed sin-cos, recomputed on both sides
            spread = float(tensor.std()) if tensor.numel() > 1 else 0.0
            tensor.add_((0.1 * spread if spread > 0 else 0.02) * torch.randn(tensor.shape, generator=g))


def inputs(frames: int, size: int, coords: bool, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"x": torch.randn(2, 6, frames, size, size, generator=g)}
    if coords:
        days = torch.tensor([105.0, 196.0, 288.0, 350.0])[:frames]
        out["temporal_coords"] = torch.stack([torch.stack([torch.full((frames,), 2023.0), days], -1),
                                              torch.stack([torch.full((frames,), 2018.0), days - 30], -1)])
        out["location_coords"] = torch.tensor([[28.6, -99.3], [47.1, 8.4]])
    return out


def reference_forward(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.forward_features(tensors["x"], tensors.get("temporal_coords"),
                                      tensors.get("location_coords"))[-1]


def save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def reference_side(out: Path, fixture: bool, presets: list[str]) -> None:
    """Runs in the reference environment: TerraTorch only, never domainfm."""
    import importlib.metadata as md

    from terratorch.models.backbones import prithvi_vit
    from terratorch.models.backbones.prithvi_mae import PrithviViT

    version = f"terratorch {md.version('terratorch')}"
    base = {"reference": version, "torch": torch.__version__, "script": "bench/geospatial_reference.py"}
    if fixture:
        io: dict[str, torch.Tensor] = {}
        for name, kwargs, seed in (("plain", TINY, 1), ("tl", TINY_TL, 2)):
            torch.manual_seed(seed)
            model = PrithviViT(**kwargs)
            perturb(model, seed)
            tensors = inputs(kwargs["num_frames"], kwargs["img_size"], name == "tl", seed)
            tensors["output"] = reference_forward(model, tensors)
            io.update({f"{name}.{k}": v for k, v in tensors.items()})
            meta = {**base, "constructor": "terratorch.models.backbones.prithvi_mae.PrithviViT",
                    "kwargs": json.dumps(kwargs)}
            save(FIXTURES / f"prithvi_tiny_{name}.safetensors", model.state_dict(), meta)
        save(FIXTURES / "prithvi_tiny_io.safetensors", io, base)
        print(f"fixture written to {FIXTURES}", flush=True)
    for preset in presets:
        factory_name = PRESETS[preset][2]
        cfg = prithvi_vit.prithvi_cfgs[factory_name]
        if hasattr(prithvi_vit, factory_name):
            factory, call = getattr(prithvi_vit, factory_name), factory_name
        else:
            factory = functools.partial(prithvi_vit._create_prithvi, factory_name)
            call = f"_create_prithvi({factory_name!r}, "
        frames = cfg["num_frames"]
        with torch.device("meta"):  # the full-size layout
            full = factory(pretrained=False, num_frames=frames)
        layout = {k: list(v.shape) for k, v in full.state_dict().items()}
        size = GRID * cfg["patch_size"][-1]
        torch.manual_seed(0)
        model = factory(pretrained=False, num_frames=frames, img_size=size)
        perturb(model, 0)
        tensors = inputs(frames, size, bool(cfg["coords_encoding"]), 0)
        tensors["output"] = reference_forward(model, tensors)
        args = f"pretrained=False, num_frames={frames}, img_size={size})"
        meta = {**base, "factory": f"terratorch.models.backbones.prithvi_vit.{factory_name}",
                "call": f"{call}{args}" if call.endswith(" ") else f"{call}({args}",
                "layout": json.dumps(layout), "eps": str(model.norm.eps)}
        save(out / f"{preset}.safetensors", model.state_dict(), meta)
        save(out / f"{preset}_io.safetensors", tensors, meta)
        del model, full
        print(f"{preset}: reference written", flush=True)


# --------------------------------------------------------------------------- our side


def ours(row: str, **overrides: object) -> torch.nn.Module:
    """Our encoder for a row of ``PRESETS`` (or a preset name)."""
    from domainfm_geospatial.encoder import build_prithvi

    preset, fixed, _ = PRESETS.get(row, (row, {}, None))
    return build_prithvi(preset, **fixed, **overrides)


def load(model: torch.nn.Module, path: Path) -> None:
    """The host's weights path: read the file, map keys with the ``prithvi`` layout, load strictly."""
    from domainfm import Host
    from domainfm.weights import load_part_weights

    layouts = Host().get("encoder", "geospatial.prithvi").weights
    load_part_weights(model, "encoder", layouts, str(path), "prithvi")


def our_forward(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    batch = {"image": tensors["x"]}
    for key in ("temporal_coords", "location_coords"):
        if key in tensors:
            batch[key] = tensors[key]
    model.eval()
    with torch.no_grad():
        out = model(batch)
    return torch.cat([out["cls"][:, None], out["tokens"]], dim=1)


def layout_check(preset: str, layout: dict[str, list[int]]) -> str:
    """Full-size keys and shapes: the reference's, mapped by our layout, against ours (meta)."""
    from domainfm.weights import key_difference
    from domainfm_geospatial.weights import prithvi

    with torch.device("meta"):
        model = ours(preset)
        mapped = prithvi({k: torch.empty(s, device="meta") for k, s in layout.items()}, model)
    problems = key_difference(model.state_dict(), mapped)
    return f"same ({len(mapped)} keys)" if not problems else f"differs: {problems}"


def compare(folder: Path, presets: list[str]) -> list[list[object]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    rows = []
    for preset in presets:
        io = load_file(str(folder / f"{preset}_io.safetensors"))
        with safe_open(str(folder / f"{preset}.safetensors"), "pt") as f:
            meta = f.metadata()
        size = io["x"].shape[-1]
        model = ours(preset, img_size=size)
        load(model, folder / f"{preset}.safetensors")
        mine = our_forward(model, io)
        diff = float((mine - io["output"]).abs().max())
        exact = our_forward(model.double(), {k: v.double() for k, v in io.items()})
        floor = float((mine.double() - exact).abs().max())  # float32 rounding of our own model
        coords = "with time + location" if "temporal_coords" in io else "no coordinates"
        name, fixed, _ = PRESETS[preset]
        label = name + "".join(f", {k}" for k in fixed)
        rows.append([label, f"{meta['reference']} `{meta['call']}`",
                     layout_check(preset, json.loads(meta["layout"])),
                     f"2 x 6 x {io['x'].shape[2]} x {size} x {size}, {coords}",
                     f"{diff:.1e}", f"{floor:.1e}", f"{TOLERANCE:.0e}",
                     "yes" if diff <= TOLERANCE else "**no**"])
        print(rows[-1], flush=True)
        del model
    return rows


def fixture_rows() -> list[list[object]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    io = load_file(str(FIXTURES / "prithvi_tiny_io.safetensors"))
    rows = []
    for name in ("plain", "tl"):
        path = FIXTURES / f"prithvi_tiny_{name}.safetensors"
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        kwargs = json.loads(meta["kwargs"])
        model = ours("tiny", img_size=kwargs["img_size"], patch_size=kwargs["patch_size"][-1],
                     num_frames=kwargs["num_frames"], embed_dim=kwargs["embed_dim"],
                     depth=kwargs["depth"], num_heads=kwargs["num_heads"],
                     temporal_encoding=name == "tl", location_encoding=name == "tl")
        load(model, path)
        tensors = {k.split(".", 1)[1]: v for k, v in io.items() if k.startswith(name + ".")}
        mine = our_forward(model, tensors)
        diff = float((mine - tensors["output"]).abs().max())
        exact = our_forward(model.double(), {k: v.double() for k, v in tensors.items()})
        floor = float((mine.double() - exact).abs().max())
        coords = "with time + location" if name == "tl" else "no coordinates"
        rows.append([f"tiny (test fixture, {name})", f"{meta['reference']} `PrithviViT(**{kwargs})`",
                     "-", f"2 x 6 x {kwargs['num_frames']} x 16 x 16, {coords}", f"{diff:.1e}",
                     f"{floor:.1e}", f"{TOLERANCE:.0e}", "yes" if diff <= TOLERANCE else "**no**"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference-python", default=str(ROOT / ".venv-bench-geospatial" / "bin" / "python"),
                        help="python of an environment with terratorch==1.2.11")
    parser.add_argument("--fixture", action="store_true", help="(re)write the test fixture")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--reference-only", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_only:
        reference_side(Path(args.reference_only), args.fixture, args.presets)
        return 0

    torch.set_num_threads(2)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="geospatial-reference-") as tmp:
        cmd = [args.reference_python, __file__, "--reference-only", tmp, "--presets", *args.presets]
        if args.fixture:
            cmd.append("--fixture")
        subprocess.run(cmd, check=True, cwd=ROOT)
        rows = fixture_rows() + compare(Path(tmp), args.presets)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import machine, table, write_section

    md = "\n".join([
        "## Geospatial: Prithvi parity with TerraTorch, built its own way",
        "",
        "Command: `.venv/bin/python bench/geospatial_reference.py --reference-python "
        f".venv-bench-geospatial/bin/python{' --fixture' if args.fixture else ''}` (the "
        f"reference environment: `pip install {REFERENCE}`). Machine: {machine()}; "
        f"{time.time() - start:.0f} s.",
        "",
        "The reference is built by TerraTorch's own backbone factory from its own `prithvi_cfgs` "
        "(`_create_prithvi`, which every factory calls, for `prithvi_eo_v2_100`: 1.2.11 has its "
        "config but no public factory; LayerNorm eps 1e-5, its default), `pretrained=False`, "
        "`num_frames` from the config, only the image size reduced "
        f"to {GRID} x {GRID} patches per frame; seeded noise on every weight. Its state dict is "
        "loaded into `geospatial.prithvi` (the preset, image size reduced alike) through the "
        "host's weights path with the `prithvi` layout, strictly; the difference is the "
        "largest absolute difference between TerraTorch's `forward_features(x)[-1]` and ours "
        "(class token + tokens); \"our float32 rounding\" is the largest difference between our "
        "encoder in float32 and in float64 on the same weights and input, the scale of "
        "rounding differences. Layout: the full-size (224 px) reference's keys and shapes, "
        "mapped by the `prithvi` layout, against ours, on the meta device. The two `tiny` rows "
        "are the fixture that `plugins/geospatial/tests/test_reference.py` checks without "
        "TerraTorch installed.",
        "",
        table(["preset", "reference (name, version, call)", "layout vs ours", "input",
               "max abs. difference", "our float32 rounding", "tolerance", "within"], rows),
    ])
    write_section("geospatial-parity", md)
    print(md)
    return 0 if all(r[-1] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
