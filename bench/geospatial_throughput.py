"""MAE pretraining throughput (chips/s) and peak memory: ours vs TerraTorch's PrithviMAE.

Both implementations run in ONE environment holding domainfm, this plugin and TerraTorch
1.2.11, so that they share the torch build and the comparison is of the implementations, not of
two torch versions. Create it once, from the repository root::

    python -m venv .venv-bench-geospatial
    .venv-bench-geospatial/bin/pip install terratorch==1.2.11
    .venv-bench-geospatial/bin/pip install -e . -e plugins/geospatial

then run the bench with that interpreter::

    .venv-bench-geospatial/bin/python bench/geospatial_throughput.py [--device cpu|cuda] [--precision bf16]

(without TerraTorch, e.g. from ``.venv``, only our rows are measured). Each (implementation,
preset) runs in its own process so peak memory is its own: on CPU the peak resident set size
(VmHWM, imports included) and its rise over the process once its libraries are imported and
before the model is built, on CUDA ``torch.cuda.max_memory_allocated``.

The reference is built TerraTorch's own way, never with our settings: eo2_100m by its factory
helper from its own config (``_create_prithvi("prithvi_eo_v2_100", encoder_only=False)``:
``PrithviMAE`` with ``prithvi_cfgs``' sizes, decoder and LayerNorm eps 1e-5); ``tiny`` has no
TerraTorch config, so its ``PrithviMAE`` class gets the preset's sizes and keeps its own
defaults for everything else. The same process checks parity: the reference's state dict is
written to a file and loaded into our encoder through the host's weights path (the ``prithvi``
layout, strictly), and both encoders' outputs are compared (``bench/geospatial_reference.py``
checks parity for every official preset).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from domainfm.engine.optim import adamw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, peak_rss_mib, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "terratorch"
SIZES = {  # preset -> (frames, image size, batch of chips per step)
    "tiny": (3, 32, 8),
    "eo2_100m": (4, 224, 2),
}
CONFIGS = {"eo2_100m": "prithvi_eo_v2_100"}  # TerraTorch's own config of a preset


def version() -> str:
    import importlib.metadata

    return importlib.metadata.version(REFERENCE)


def imports(impl: str) -> None:
    """Import an implementation's libraries (before the memory baseline is taken)."""
    if impl == "ours":
        import domainfm_geospatial.encoder  # noqa: F401
        import domainfm_geospatial.objective  # noqa: F401
    else:
        from terratorch.models.backbones import prithvi_mae, prithvi_vit  # noqa: F401


def build(impl: str, preset: str):
    """A pretraining step function ``step(x) -> loss``, its parameters, its modules and how
    the reference was built."""
    from domainfm_geospatial.encoder import PRESETS, build_prithvi
    from domainfm_geospatial.objective import build_mae

    if impl == "ours":
        encoder = build_prithvi(preset)
        objective = build_mae(encoder)
        params = [*encoder.parameters(), *objective.parameters()]
        return (lambda x: objective(encoder, {"image": x})["loss"]), params, (encoder, objective), ""
    from terratorch.models.backbones import prithvi_mae, prithvi_vit

    frames = SIZES[preset][0]
    if preset in CONFIGS:  # TerraTorch's factory helper with its own config
        model = prithvi_vit._create_prithvi(CONFIGS[preset], pretrained=False, num_frames=frames,
                                            encoder_only=False)
        call = f"_create_prithvi({CONFIGS[preset]!r}, pretrained=False, num_frames={frames}, encoder_only=False)"
    else:  # no TerraTorch config: its class with the preset's sizes, its defaults otherwise
        cfg = PRESETS[preset]
        kwargs = dict(img_size=cfg["img_size"], patch_size=(1, cfg["patch_size"], cfg["patch_size"]),
                      num_frames=cfg["num_frames"], in_chans=6, embed_dim=cfg["embed_dim"],
                      depth=cfg["depth"], num_heads=cfg["num_heads"],
                      decoder_embed_dim=cfg["decoder_dim"], decoder_depth=cfg["decoder_depth"],
                      decoder_num_heads=cfg["decoder_heads"], mlp_ratio=cfg["mlp_ratio"])
        model = prithvi_mae.PrithviMAE(**kwargs)
        call = "PrithviMAE(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
    return (lambda x: model(x)[0]["loss"]), list(model.parameters()), (model,), call


def parity(preset: str, model) -> float:
    """Max |difference| between the reference encoder and ours with its weights, loaded from a
    file through the host's weights path (``prithvi`` layout, strict)."""
    from safetensors.torch import save_file

    from domainfm import Host
    from domainfm.weights import load_part_weights
    from domainfm_geospatial.encoder import build_prithvi

    frames, size, _ = SIZES[preset]
    ours = build_prithvi(preset).eval()
    layouts = Host().get("encoder", "geospatial.prithvi").weights
    with tempfile.TemporaryDirectory(prefix="geospatial-throughput-") as tmp:
        path = Path(tmp) / "reference.safetensors"
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
        load_part_weights(ours, "encoder", layouts, path, "prithvi")
    model.eval()
    torch.manual_seed(0)
    x = torch.randn(2, 6, frames, size, size)
    with torch.no_grad():
        theirs = model.encoder.forward_features(x)[-1]
        mine = ours({"image": x})
        mine = torch.cat([mine["cls"][:, None], mine["tokens"]], dim=1)
    return float((theirs - mine).abs().max())


def one(impl: str, preset: str, device: str, precision: str, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    imports(impl)
    before = peak_rss_mib()
    torch.manual_seed(0)
    step, params, modules, call = build(impl, preset)
    for m in modules:
        m.to(device).train()
    frames, size, batch = SIZES[preset]
    x = torch.randn(batch, 6, frames, size, size, device=device)
    opt = adamw(params, lr=1e-4)  # the engine's, for both
    dtype = torch.bfloat16 if precision == "bf16" else None

    def train_step() -> None:
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            loss = step(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_step()  # warm-up (allocations, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    out = {"impl": impl, "preset": preset, "chips_per_s": batch * steps / elapsed,
           "step_s": elapsed / steps, "batch": batch,
           "params_m": sum(p.numel() for p in params) / 1e6, "call": call}
    if device == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_mib"], out["rise_mib"] = peak_rss_mib(), peak_rss_mib() - before
    if impl == "reference":
        out["parity_max_abs"] = parity(preset, modules[0].cpu())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--presets", nargs="+", default=list(SIZES))
    parser.add_argument("--steps", type=int, default=20, help="timed steps, tiny")
    parser.add_argument("--big-steps", type=int, default=2, help="timed steps, larger presets")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.device, args.precision, args.steps, args.threads)))
        return

    notes: list[str] = []
    with_reference = importlib.util.find_spec(REFERENCE) is not None
    if not with_reference:
        notes.append("reference skipped: terratorch is not installed in this environment "
                     "(see the docstring for `.venv-bench-geospatial`)")
    impls = ["ours", "reference"] if with_reference else ["ours"]
    rows, calls = [], {}
    for preset in args.presets:
        runs: dict[str, list[dict]] = {impl: [] for impl in impls}
        for repeat in range(args.repeats):  # interleaved, order alternating: shared-load noise
            for impl in impls if repeat % 2 == 0 else impls[::-1]:
                steps = args.steps if preset == "tiny" else args.big_steps
                cmd = [sys.executable, __file__, "--one", impl, preset, "--device", args.device,
                       "--precision", args.precision, "--steps", str(steps),
                       "--threads", str(args.threads)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if done.returncode:
                    notes.append(f"{impl} {preset} failed: {done.stderr.strip().splitlines()[-1]}")
                    continue
                runs[impl].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(runs[impl][-1], flush=True)
        for impl, results in runs.items():
            if not results:
                continue
            speed = statistics.median(r["chips_per_s"] for r in results)
            r = results[0]
            if impl == "reference":
                calls[preset] = r["call"]
            rows.append([preset, "domainfm-geospatial" if impl == "ours" else f"TerraTorch {version()} PrithviMAE",
                         f"{r['params_m']:.1f}", r["batch"], f"{speed:.3g}",
                         " / ".join(f"{x['chips_per_s']:.3g}" for x in results),
                         f"{max(x['peak_mib'] for x in results):.0f}",
                         f"{max(x.get('rise_mib', float('nan')) for x in results):.0f}",
                         f"{max(x['parity_max_abs'] for x in results):.1e}" if "parity_max_abs" in r else "-"])
    unit = "peak GPU MiB" if args.device == "cuda" else "peak RSS MiB"
    md = "\n".join([
        f"## Geospatial: MAE pretraining throughput, {args.device} ({args.precision})",
        "",
        f"Command: `.venv-bench-geospatial/bin/python bench/geospatial_throughput.py --device {args.device} "
        f"--precision {args.precision} --steps {args.steps} --big-steps {args.big_steps} "
        f"--repeats {args.repeats} --threads {args.threads}`. "
        f"Machine: {machine()}.",
        "",
        "One training step = masked forward (75%), backward and the engine's AdamW (fused "
        "kernel, for both) with each preset's MAE decoder (eo2_100m: 512 wide x 8 blocks; tiny: "
        "64 x 2). Inputs: tiny 3 x 32 x 32, eo2_100m 4 x 224 x 224, 6 bands. Both "
        "implementations run in the same environment (domainfm, this plugin and TerraTorch, one "
        "torch build: see the docstring for `.venv-bench-geospatial`), every run in its own "
        "process, ours and the reference interleaved (order alternating) on a machine shared "
        "with other work, one warm-up step each. The reference is built TerraTorch's own way: "
        + "; ".join(f"{p}: `{c}`" for p, c in calls.items())
        + (" (tiny has no TerraTorch config: its class with the preset's sizes, its defaults "
           "otherwise, LayerNorm eps 1e-5 included)" if "tiny" in calls else "")
        + ". Peak RSS includes each implementation's imports (TerraTorch's package pulls in "
        "its dataset stack); the rise is over the process once imported, before the model is "
        "built. Parity: the largest absolute difference between TerraTorch's encoder output "
        "(`forward_features(x)[-1]`) and ours after its state dict is written to a file and "
        "loaded through the host's weights path with the `prithvi` layout (strict; EO-2.0 "
        "key layout), on the benchmark's input shape.",
        "",
        table(["preset", "implementation", "params (M)", "chips/step", "chips/s (median)",
               "chips/s per run", unit,
               "rise over start MiB", "parity"], rows),
        *(["", *[f"- {n}" for n in notes]] if notes else []),
    ])
    key = f"geospatial-throughput-{args.device}-{args.precision}"
    write_section(key, md)
    print(md)


if __name__ == "__main__":
    main()
