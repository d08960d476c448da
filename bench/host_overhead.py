"""Host benchmarks: CLI start-up time, and the engine's per-step overhead over bare PyTorch.

    python bench/host_overhead.py [--steps 300] [--repeats 5]

The overhead run trains the example plugin's ``small`` patch transformer with its masked-patch
objective on the same data twice: once through ``domainfm.pretrain`` (Lightning, logging,
schedule, checkpointing at the end) and once in a hand-written loop doing the same work
(AdamW + warmup/cosine, one DataLoader). Steady-state time per step excludes start-up: it is
measured from the 20th step to the last.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, write_section  # noqa: E402

WARMUP_STEPS = 20


def cli_startup(repeats: int) -> float:
    """Median wall time of ``domainfm plugins`` in a fresh process."""
    exe = Path(sys.executable).parent / "domainfm"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([str(exe), "plugins"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class StepClock(pl.Callback):
    def __init__(self) -> None:
        self.start = self.end = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == WARMUP_STEPS:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()
        self.steps = trainer.global_step - WARMUP_STEPS


def data_params(steps: int) -> dict:
    return {"num_samples": 16 * (steps + 10) * 100 // 70, "batch_size": 16, "length": 64}


def engine_step_time(steps: int, folder: Path) -> float:
    import domainfm

    clock = StepClock()
    domainfm.pretrain({
        "data": {"name": "example.waves", "params": data_params(steps)},
        "encoder": {"name": "example.patch_transformer", "preset": "small"},
        "output_dir": str(folder / "engine"),
        "trainer": {"max_steps": steps, "enable_progress_bar": False, "limit_val_batches": 0},
    }, callbacks=[clock])
    return (clock.end - clock.start) / clock.steps


def bare_step_time(steps: int) -> float:
    from domainfm_example.data import WavesDataModule
    from domainfm_example.model import MaskedPatches, build_encoder

    from domainfm.config import OptimConfig
    from domainfm.engine.optim import build_optimizer

    torch.manual_seed(0)
    datamodule = WavesDataModule(**data_params(steps))
    datamodule.setup("fit")
    encoder = build_encoder("small")
    objective = MaskedPatches(encoder)
    model = torch.nn.ModuleDict({"encoder": encoder, "objective": objective})
    built = build_optimizer(model, OptimConfig(), steps)
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    step = 0
    start = 0.0
    model.train()
    while step < steps:
        for batch in datamodule.train_dataloader():
            if step == WARMUP_STEPS:
                start = time.perf_counter()
            loss = objective(encoder, batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step >= steps:
                break
    return (time.perf_counter() - start) / (steps - WARMUP_STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    startup = cli_startup(args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        bare = [bare_step_time(args.steps) for _ in range(2)]
        engine = [engine_step_time(args.steps, Path(tmp) / str(i)) for i in range(2)]
    bare_ms, engine_ms = 1000 * min(bare), 1000 * min(engine)
    overhead = 100 * (engine_ms / bare_ms - 1)
    markdown = "\n".join([
        "## Host: CLI start-up and engine overhead",
        "",
        f"`python bench/host_overhead.py --steps {args.steps} --repeats {args.repeats}` on {machine()}.",
        "",
        table(["measure", "value"], [
            ["`domainfm plugins` start-up (median of fresh processes)", f"{startup:.2f} s"],
            ["bare PyTorch loop, ms/step (example `small`, batch 16)", f"{bare_ms:.2f}"],
            ["domainfm engine (Lightning), ms/step", f"{engine_ms:.2f}"],
            ["engine overhead (target < 10%)", f"{overhead:+.1f}%"],
        ]),
        "",
        f"Steady state from step {WARMUP_STEPS} to {args.steps}, best of two runs each.",
    ])
    print(markdown)
    write_section("host", markdown)


if __name__ == "__main__":
    main()
