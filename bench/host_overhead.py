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


def data_params(steps: int, batch_size: int) -> dict:
    return {"num_samples": batch_size * (steps + 10) * 100 // 70, "batch_size": batch_size,
            "length": 64}


def engine_step_time(steps: int, folder: Path, batch_size: int = 16) -> float:
    import domainfm

    clock = StepClock()
    domainfm.pretrain({
        "data": {"name": "example.waves", "params": data_params(steps, batch_size)},
        "encoder": {"name": "example.patch_transformer", "preset": "small"},
        "output_dir": str(folder / "engine"),
        "trainer": {"max_steps": steps, "enable_progress_bar": False, "limit_val_batches": 0},
    }, callbacks=[clock])
    return (clock.end - clock.start) / clock.steps


def bare_step_time(steps: int, batch_size: int = 16) -> float:
    from domainfm_example.data import WavesDataModule
    from domainfm_example.model import MaskedPatches, build_encoder

    from domainfm.config import OptimConfig
    from domainfm.engine.optim import build_optimizer

    torch.manual_seed(0)
    datamodule = WavesDataModule(**data_params(steps, batch_size))
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
    rows = [["`domainfm plugins` start-up (median of fresh processes)", f"{startup:.2f} s"]]
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (16, 128):
            bare, engine = [], []
            for i in range(args.repeats):  # interleaved, best of each, so a busy spell hits both
                bare.append(bare_step_time(args.steps, batch))
                engine.append(engine_step_time(args.steps, Path(tmp) / f"{batch}-{i}", batch))
            bare_ms, engine_ms = 1000 * min(bare), 1000 * min(engine)
            rows += [
                [f"bare PyTorch loop, ms/step (example `small`, batch {batch})", f"{bare_ms:.2f}"],
                [f"domainfm engine (Lightning), ms/step, batch {batch}", f"{engine_ms:.2f}"],
                [f"engine overhead, batch {batch} (target < 10%)",
                 f"{100 * (engine_ms / bare_ms - 1):+.1f}%"],
            ]
    markdown = "\n".join([
        "## Host: CLI start-up and engine overhead",
        "",
        f"`python bench/host_overhead.py --steps {args.steps} --repeats {args.repeats}` on {machine()}.",
        "",
        table(["measure", "value"], rows),
        "",
        f"Steady state from step {WARMUP_STEPS} to {args.steps}, best of {args.repeats} interleaved runs each. The engine "
        "adds a roughly fixed cost per step (Lightning's loop, logging, LR monitor, checkpoint "
        "bookkeeping), so its share shrinks as steps get heavier.",
    ])
    print(markdown)
    write_section("host", markdown)


if __name__ == "__main__":
    main()
