"""MAE pretraining throughput (chips/s) and peak memory: ours vs TerraTorch's PrithviMAE.

Each (implementation, preset) runs in its own process so peak memory is its own: on CPU the
peak resident set size (and its rise over the process before the model is built), on CUDA
``torch.cuda.max_memory_allocated``. The reference is TerraTorch 1.2.11's ``PrithviMAE``, loaded
from an optional separate environment ``.venv-bench-geospatial`` (``pip install --no-deps
terratorch==1.2.11`` plus a ``.pth`` reaching the main environment); its module file is loaded
directly, since importing the ``terratorch`` package pulls in its whole dataset stack. It gets
the preset's sizes and keeps its own defaults for everything else (LayerNorm eps 1e-5 included).
The same process checks parity: the reference's weights, loaded through our ``prithvi`` layout,
must reproduce its encoder's output (``bench/geospatial_reference.py`` checks parity against
TerraTorch's own configs and factories).

    .venv/bin/python bench/geospatial_throughput.py [--device cpu|cuda] [--precision bf16]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from domainfm.engine.optim import adamw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, peak_rss_mib, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench-geospatial" / "bin" / "python"
SIZES = {  # preset -> (frames, image size, batch of chips per step)
    "tiny": (3, 32, 8),
    "eo2_100m": (4, 224, 2),
}


def reset_peak() -> None:
    """Restart the peak-RSS count from the current RSS (Linux clear_refs), where allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def reference_module():
    spec = importlib.util.find_spec("terratorch")
    if spec is None:
        raise ImportError("terratorch is not installed in this environment")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "backbones" / "prithvi_mae.py"
    module_spec = importlib.util.spec_from_file_location("terratorch_prithvi_mae", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def build(impl: str, preset: str):
    """A pretraining step function ``step(x) -> loss`` and its parameters."""
    from domainfm_geospatial.encoder import PRESETS, build_prithvi
    from domainfm_geospatial.objective import build_mae

    cfg = PRESETS[preset]
    if impl == "ours":
        encoder = build_prithvi(preset)
        objective = build_mae(encoder)
        params = [*encoder.parameters(), *objective.parameters()]
        return (lambda x: objective(encoder, {"image": x})["loss"]), params, (encoder, objective)
    ref = reference_module()
    model = ref.PrithviMAE(
        img_size=cfg["img_size"], patch_size=(1, cfg["patch_size"], cfg["patch_size"]),
        num_frames=cfg["num_frames"], in_chans=6, embed_dim=cfg["embed_dim"], depth=cfg["depth"],
        num_heads=cfg["num_heads"], decoder_embed_dim=cfg["decoder_dim"],
        decoder_depth=cfg["decoder_depth"], decoder_num_heads=cfg["decoder_heads"],
        mlp_ratio=cfg["mlp_ratio"])  # norm_layer: TerraTorch's own default (nn.LayerNorm)
    return (lambda x: model(x)[0]["loss"]), list(model.parameters()), (model,)


def parity(preset: str, model) -> float:
    """Max |difference| between the reference encoder and ours loaded with its weights."""
    from domainfm.weights import load_strict
    from domainfm_geospatial.encoder import build_prithvi
    from domainfm_geospatial.weights import prithvi

    frames, size, _ = SIZES[preset]
    ours = build_prithvi(preset).eval()
    load_strict(ours, prithvi(model.state_dict(), ours), "TerraTorch's PrithviMAE")
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
    before = peak_rss_mib()
    torch.manual_seed(0)
    step, params, modules = build(impl, preset)
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
           "params_m": sum(p.numel() for p in params) / 1e6}
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

    reference_python = str(BENCH_VENV) if BENCH_VENV.exists() else None
    if reference_python is None:
        notes.append("reference skipped: `.venv-bench-geospatial` (terratorch 1.2.11) not found")
    rows = []
    for preset in args.presets:
        runs: dict[str, list[dict]] = {"ours": [], "reference": []}
        for repeat in range(args.repeats):  # interleaved, order alternating: shared-load noise
            order = [("ours", sys.executable), ("reference", reference_python)]
            for impl, python in order if repeat % 2 == 0 else order[::-1]:
                if python is None:
                    continue
                steps = args.steps if preset == "tiny" else args.big_steps
                cmd = [python, __file__, "--one", impl, preset, "--device", args.device,
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
            rows.append([preset, "domainfm-geospatial" if impl == "ours" else "TerraTorch 1.2.11 PrithviMAE",
                         f"{r['params_m']:.1f}", r["batch"], f"{speed:.3g}",
                         " / ".join(f"{x['chips_per_s']:.3g}" for x in results),
                         f"{max(x['peak_mib'] for x in results):.0f}",
                         f"{max(x.get('rise_mib', float('nan')) for x in results):.0f}",
                         f"{r['parity_max_abs']:.1e}" if "parity_max_abs" in r else "-"])
    unit = "peak GPU MiB" if args.device == "cuda" else "peak RSS MiB"
    md = "\n".join([
        f"## Geospatial: MAE pretraining throughput, {args.device} ({args.precision})",
        "",
        f"Command: `.venv/bin/python bench/geospatial_throughput.py --device {args.device} "
        f"--precision {args.precision} --steps {args.steps} --big-steps {args.big_steps} "
        f"--repeats {args.repeats} --threads {args.threads}`. "
        f"Machine: {machine()}.",
        "",
        "One training step = masked forward (75%), backward and the engine's AdamW (fused kernel, for both) with each preset's MAE "
        "decoder (eo2_100m: 512 wide x 8 blocks; tiny: 64 x 2). Inputs: tiny 3 x 32 x 32, eo2_100m "
        "4 x 224 x 224, 6 bands. Every run is its own process, ours and the reference interleaved "
        "(order alternating) on a machine shared with other work, one warm-up step each; parity is the largest absolute "
        "difference between TerraTorch's encoder output and ours after loading its weights "
        "through the `prithvi` layout (EO-2.0 key layout).",
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
