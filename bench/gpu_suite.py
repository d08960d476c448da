"""GPU pretraining benchmark: throughput, peak memory and MFU of each plugin's main preset in bf16.

For every installed plugin, one pretraining step (encoder + objective, AdamW) of its main preset
runs under ``torch.autocast(bfloat16)`` on one GPU: a few warm-up steps, then timed steps. Model
FLOPs are counted once with ``torch.utils.flop_counter.FlopCounterMode`` over one whole step
(forward and backward), so MFU = FLOPs per step x steps per second / the GPU's peak dense bf16
FLOP/s (table below, keyed by the name CUDA reports). Prints a table and writes the
``gpu-suite`` section of BENCHMARKS.md, with the GPU's name.

    python bench/gpu_suite.py                    # every installed plugin, main presets, GPU
    python bench/gpu_suite.py --plugin geospatial --steps 50 --batch-size 32
    python bench/gpu_suite.py --smoke            # CPU, tiny presets, 2 steps: seconds (CI)

The smoke mode checks the suite itself, in float32 on CPU (its MFU column is against a nominal
CPU peak and means nothing); it writes a section marked "smoke".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import BENCHMARKS, machine, table, write_section  # noqa: E402

from domainfm.components import fill_params  # noqa: E402
from domainfm.config import OptimConfig  # noqa: E402
from domainfm.engine.modules import PretrainModule  # noqa: E402
from domainfm.host import Host  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peak, FLOP/s, by a substring of the CUDA device name;
# the first match wins, so the more specific names come first.
PEAK_BF16 = [
    ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12),  # "H100 80GB HBM3" is SXM
    ("H200", 989e12), ("GH200", 989e12), ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12),
    ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12),
    ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("A6000", 155e12),
]
CPU_NOMINAL_PEAK = 1e12  # smoke mode only



def main_presets(host: Host) -> dict[str, tuple[str, str, str, dict[str, Any], int | None]]:
    """plugin -> (encoder, benchmark preset, dataset, its params, batch size), from the records.

    Each encoder record names the size to measure (``benchmark_preset``) and the parameters of
    its default dataset whose samples fit that size (``benchmark_data``); no plugin is named here.
    """
    out = {}
    for record in host.components("encoder"):
        if record.benchmark_preset and record.default_dataset and record.plugin not in out:
            params = dict(record.benchmark_data)
            batch = params.pop("batch_size", None)
            out[record.plugin] = (record.name, record.benchmark_preset, record.default_dataset,
                                  params, batch)
    return out


def peak_flops(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "CPU (smoke)", CPU_NOMINAL_PEAK
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16:
        if key in name:
            return name, value
    return name, None


def to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    if hasattr(value, "to") and not isinstance(value, (str, bytes)):
        return value.to(device, non_blocking=True)
    return value


def first_batch(host: Host, dataset: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The first training batch and the data specification's hints."""
    datamodule = host.get("dataset", dataset).build(**params)
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader())), datamodule.data_spec().hints()


def bench_plugin(host: Host, plugin: str, smoke: bool, steps: int, warmup: int,
                 batch_size: int | None, device: torch.device) -> dict[str, Any]:
    encoder_name, preset, dataset, params, default_batch = main_presets(host)[plugin]
    record = host.get("dataset", dataset)
    if smoke:
        preset, params, default_batch = "tiny", dict(record.tiny_params), None
    params = dict(params)
    if batch_size or default_batch:
        params["batch_size"] = batch_size or default_batch
    encoder_record = host.get("encoder", encoder_name)
    encoder = encoder_record.build(preset=preset)
    batch, hints = first_batch(host, dataset, params)
    objective_record = host.get("objective", encoder_record.default_objective)
    objective = objective_record.build(encoder, **fill_params(objective_record.build, {}, hints, skip=1))
    module = PretrainModule(encoder, objective, OptimConfig()).to(device).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4, fused=device.type == "cuda")
    batch = to_device(batch, device)
    size = _batch_size(batch)
    dtype = torch.float32 if smoke else torch.bfloat16

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = module(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    step_time = statistics.median(times)
    _, peak = peak_flops(device)
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"plugin": plugin, "encoder": f"{encoder_name} {preset}", "batch": size,
            "params": sum(p.numel() for p in encoder.parameters()) / 1e6,
            "samples_s": size / step_time, "step_ms": step_time * 1e3,
            "tflop_step": flops / 1e12, "memory_gib": memory,
            "mfu": flops / step_time / peak if peak else float("nan")}


def _batch_size(batch: Any) -> int:
    from domainfm.engine.modules import batch_size_of

    return batch_size_of(batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plugin", action="append", help="only these plugins (default: all installed)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny presets, a few steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--report", type=Path, default=BENCHMARKS)
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("no GPU here: run with --smoke for the CPU check", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    steps = args.steps or (2 if args.smoke else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 5)
    host = Host()
    presets = main_presets(host)
    unknown = [p for p in args.plugin or () if p not in presets]
    if unknown:
        print(f"no benchmark preset for plugin(s) {unknown}; measurable: {sorted(presets)}",
              file=sys.stderr)
        return 2
    rows, results = [], []
    for plugin in args.plugin or sorted(presets):
        try:
            r = bench_plugin(host, plugin, args.smoke, steps, warmup, args.batch_size, device)
        except Exception as exc:  # noqa: BLE001 - one plugin's failure is a row, not a crash
            print(f"{plugin}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            rows.append([plugin, presets[plugin][0], "-", "-", "-", "-", "-", "-",
                         f"failed: {type(exc).__name__}"])
            continue
        results.append(r)
        rows.append([r["plugin"], r["encoder"], f"{r['params']:.1f}", r["batch"], f"{r['samples_s']:.1f}",
                     f"{r['step_ms']:.1f}", f"{r['memory_gib']:.2f}", f"{r['tflop_step']:.3f}",
                     f"{100 * r['mfu']:.1f}%"])
    header = ["plugin", "encoder preset", "M params", "batch", "samples/s", "ms/step",
              "peak GiB", "TFLOP/step", "MFU"]
    print(table(header, rows))
    gpu, peak = peak_flops(device)
    mode = "smoke (CPU, float32, tiny presets; not a measurement)" if args.smoke else "bf16 autocast"
    text = (f"## GPU pretraining suite ({mode})\n\n"
            f"`python bench/gpu_suite.py{' --smoke' if args.smoke else ''}` on **{gpu}** "
            f"(peak {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s used for MFU); {machine()}. "
            f"One encoder+objective step with AdamW, median of {steps} steps after {warmup} warm-up; "
            "FLOPs from FlopCounterMode over one forward+backward.\n\n" + table(header, rows))
    write_section("gpu-suite-smoke" if args.smoke else "gpu-suite", text, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
