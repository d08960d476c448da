"""ETTh1 through the engine against a plain PyTorch loop doing the same work, side by side.

    .venv/bin/python bench/timeseries_engine.py [--repeats 2] [--threads 1] [--write]

Engine: the shipped configs as a user runs them, each verb in a fresh process,
``domainfm finetune --config plugins/timeseries/configs/finetune_etth1.yaml`` then
``domainfm evaluate --config plugins/timeseries/configs/evaluate_etth1.yaml`` (``--via api``
runs ``domainfm.finetune`` + ``domainfm.evaluate`` in one fresh process instead, with a callback
timing sanity validation, training, validation and checkpointing).
Plain loop (``--plain-loop``, defined here and only here as the reference): the same model
(``build_ttm`` + ``build_forecast_head``), the same datamodule and loaders, fused AdamW with the
same parameter groups, warmup + cosine per step, the same epochs, validation with the same
metrics after every epoch, the best validation epoch kept (in memory) and scored on the test
split. Both start from the same seed, so they train the same weights.

Runs alternate (engine, loop, loop, engine, ...) so a busy spell of the shared machine hits
both sides alike; the load average is recorded before and after each run. ``--threads`` sets
``OMP_NUM_THREADS`` for both sides (on 2 cores shared with other jobs one thread is several
times faster than two: two OpenMP threads wait on each other whenever one is descheduled).
The data folder (default ../shared/data/timeseries) holds ETTh1.csv; without it the bench
says so and exits.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "plugins" / "timeseries" / "configs"
TRAIN_CONFIG = CONFIGS / "finetune_etth1.yaml"
TEST_CONFIG = CONFIGS / "evaluate_etth1.yaml"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "timeseries"


# --------------------------------------------------------------------------- the plain loop


def plain_loop(config: dict[str, Any], test_config: dict[str, Any]) -> dict[str, Any]:
    """The protocol of ``config`` by hand: no Lightning, no domainfm host or engine."""
    t0 = time.perf_counter()
    import numpy as np
    import torch

    from domainfm_timeseries.data.forecast import ForecastDataModule
    from domainfm_timeseries.encoder import build_ttm
    from domainfm_timeseries.heads import build_forecast_head
    from domainfm_timeseries.metrics import MASE, SMAPE, ForecastMAE, ForecastMSE

    t_import = time.perf_counter()
    trainer, optim = config["trainer"], config["optim"]
    seed = config.get("seed", 0)
    datamodule = ForecastDataModule(**config["data"]["params"])
    datamodule.setup("fit")
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    encoder = build_ttm(preset=config["encoder"]["preset"], **config["encoder"].get("params", {}))
    head = build_forecast_head(encoder, prediction_length=datamodule.params["prediction_length"])
    model = torch.nn.ModuleDict({"encoder": encoder, "head": head})

    def metrics(specs: list[Any]) -> dict[str, Any]:
        classes = {"mse": ForecastMSE, "mae": ForecastMAE, "mase": MASE, "smape": SMAPE}
        out = {}
        for spec in specs:
            name, params = (spec, {}) if isinstance(spec, str) else (spec["name"], spec.get("params", {}))
            short = name.split(".", 1)[1]
            out[short] = classes[short](**params)
        return out

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith((".bias", "token", "tokens")) else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": optim["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=optim["lr"], betas=tuple(optim["betas"]), fused=True)
    train_loader = datamodule.train_dataloader()
    limit = trainer.get("limit_train_batches")
    per_epoch = min(len(train_loader), limit) if isinstance(limit, int) else len(train_loader)
    epochs = trainer["max_epochs"]
    total = per_epoch * epochs
    warmup = int(optim["warmup"] * total) if optim["warmup"] < 1 else int(optim["warmup"])

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    @torch.inference_mode()
    def score(loader: Any, specs: list[Any], limit_batches: Any = None) -> dict[str, float]:
        model.eval()
        ms, loss_sum, n = metrics(specs), 0.0, 0
        for i, batch in enumerate(loader):
            if isinstance(limit_batches, int) and i >= limit_batches:
                break
            pred = head(encoder(batch), batch)
            loss_sum += float(head.loss(pred, batch)) * len(pred)
            n += len(pred)
            for m in ms.values():
                m.update(pred, batch["target"], batch=batch)
        return {"loss": loss_sum / max(n, 1), **{k: float(m.compute()) for k, m in ms.items()}}

    t_setup = time.perf_counter()
    times = {"train": 0.0, "val": 0.0}
    best, best_state, losses, history = math.inf, None, [], []
    for epoch in range(epochs):
        t = time.perf_counter()
        model.train()
        for i, batch in enumerate(train_loader):
            if i >= per_epoch:
                break
            loss = head.loss(head(encoder(batch), batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        times["train"] += time.perf_counter() - t
        t = time.perf_counter()
        val = score(datamodule.val_dataloader(), config["metrics"], trainer.get("limit_val_batches"))
        history.append(val)
        if val["mse"] < best:
            best, best_state = val["mse"], copy.deepcopy(model.state_dict())
        times["val"] += time.perf_counter() - t
    t = time.perf_counter()
    model.load_state_dict(best_state)
    test = score(datamodule.test_dataloader(), test_config["metrics"])
    times["test"] = time.perf_counter() - t
    times.update(imports=t_import - t0, setup=t_setup - t_import)
    return {"test": test, "best_val_mse": best, "val": history, "first_train_loss": losses[0],
            "last_train_loss": losses[-1], "steps": len(losses), "phases": times}


# --------------------------------------------------------------------------- the engine


def phase_clock() -> Any:
    """A Lightning callback timing the engine's phases of a fit."""
    import lightning.pytorch as pl

    class PhaseClock(pl.Callback):
        """Laps between hooks: set-up before the loop, sanity validation, training epochs,
        validation epochs, and the rest (checkpoint writes, epoch boundaries, fit end)."""

        def __init__(self) -> None:
            self.t = dict.fromkeys(("before_loop", "sanity", "train", "val", "other"), 0.0)
            self.mark = self.fit_start = 0.0
            self.in_sanity = False

        def _lap(self, key: str) -> None:
            now = time.perf_counter()
            self.t[key] += now - self.mark
            self.mark = now

        def on_fit_start(self, trainer: Any, module: Any) -> None:
            self.fit_start = self.mark = time.perf_counter()

        def on_sanity_check_start(self, trainer: Any, module: Any) -> None:
            self._lap("before_loop")
            self.in_sanity = True

        def on_sanity_check_end(self, trainer: Any, module: Any) -> None:
            self._lap("sanity")
            self.in_sanity = False

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self._lap("other" if trainer.current_epoch or self.t["sanity"] else "before_loop")

        def on_validation_start(self, trainer: Any, module: Any) -> None:
            if not self.in_sanity:
                self._lap("train")

        def on_validation_end(self, trainer: Any, module: Any) -> None:
            if not self.in_sanity:
                self._lap("val")

        def on_fit_end(self, trainer: Any, module: Any) -> None:
            self._lap("other")

    return PhaseClock()


def engine_api(train_overrides: list[str], test_overrides: list[str]) -> dict[str, Any]:
    """``domainfm.finetune`` + ``domainfm.evaluate`` of the shipped configs in this process."""
    t0 = time.perf_counter()
    import domainfm

    t_import = time.perf_counter()
    clock = phase_clock()
    run = domainfm.finetune(TRAIN_CONFIG, train_overrides, callbacks=[clock])
    t_fit = time.perf_counter()
    test = domainfm.evaluate(TEST_CONFIG, [f"init={run.run_dir}", *test_overrides])
    t_end = time.perf_counter()
    phases = dict(clock.t)
    phases.update(imports=t_import - t0, open_and_build=clock.fit_start - t_import,
                  after_fit=t_fit - clock.mark, evaluate=t_end - t_fit)
    return {"test": {k.split("/")[-1]: v for k, v in test.metrics.items() if k.startswith("test/")},
            "phases": phases}


def cli(verb: str, config: Path, overrides: list[str], env: dict[str, str]) -> float:
    exe = Path(sys.executable).parent / "domainfm"
    args = [str(exe), verb, "--config", str(config)]
    for item in overrides:
        args += ["--set", item]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"domainfm {verb} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


# --------------------------------------------------------------------------- orchestration


def load_yaml(path: Path, overrides: list[str]) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load(path.read_text())
    for item in overrides:  # the subset of --set the plain loop needs: dotted keys, YAML values
        key, _, value = item.partition("=")
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return raw


def self_run(flag: str, payload: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run this script with ``flag`` in a fresh process; its last stdout line is JSON."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, flag, json.dumps(payload)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{flag} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def test_metrics(folder: Path) -> dict[str, float]:
    final = json.loads((folder / "metrics.json").read_text())["final"]
    return {k.split("/")[-1]: v for k, v in final.items() if k.startswith("test/")}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--plain-loop", "--engine-api"):
        payload = json.loads(sys.argv[2])
        if sys.argv[1] == "--plain-loop":
            out = plain_loop(load_yaml(TRAIN_CONFIG, payload["train"]),
                             load_yaml(TEST_CONFIG, payload["test"]))
        else:
            out = engine_api(payload["train"], payload["test"])
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder with ETTh1.csv")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, alternated")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of both sides")
    parser.add_argument("--via", choices=["cli", "api"], default="cli")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="extra overrides for both sides, e.g. trainer.limit_train_batches=20")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args()
    data = Path(args.data_dir) / "ETTh1.csv"
    if not data.is_file():
        sys.exit(f"skipped: {data} is missing (pass --data-dir; see ../shared/data/README.md)")
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    runs: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="ts-engine-"))
    try:
        for i in range(2 * args.repeats):
            side = ("engine", "loop")[(i + i // 2) % 2]  # engine, loop, loop, engine, engine...
            folder = tmp / f"{side}-{i}"
            train = [f"output_dir={folder}", f"data.params.path={data}",
                     "trainer.enable_progress_bar=false", *args.overrides]
            test = [f"init={folder}", f"output_dir={folder}-test", f"data.params.path={data}",
                    "trainer.enable_progress_bar=false"]
            load = os.getloadavg()[0]
            if side == "loop":
                result = self_run("--plain-loop", {"train": train, "test": test}, env)
            elif args.via == "api":
                result = self_run("--engine-api", {"train": train, "test": test[1:]}, env)
            else:
                fit = cli("finetune", TRAIN_CONFIG, train, env)
                score = cli("evaluate", TEST_CONFIG, test, env)
                result = {"test": test_metrics(folder.with_name(folder.name + "-test")),
                          "wall": fit + score, "phases": {"finetune": fit, "evaluate": score}}
            result.update(side=side, load_before=load, load_after=os.getloadavg()[0])
            runs.append(result)
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(runs, args)


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    engine = [r["wall"] for r in runs if r["side"] == "engine"]
    loop = [r["wall"] for r in runs if r["side"] == "loop"]
    ratio = sum(engine) / sum(loop)
    print(f"engine {engine} s, plain loop {loop} s: ratio {ratio:.3f}")
    if not args.write:
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from report import machine, table, write_section

    rows = []
    for r in runs:
        phases = ", ".join(f"{k} {v:.0f}" for k, v in r["phases"].items() if v >= 0.5)
        rows.append([r["side"], f"{r['wall']:.0f}", f"{r['test']['mse']:.4f}",
                     f"{r['test']['mae']:.4f}", f"{r['load_before']:.1f} / {r['load_after']:.1f}",
                     phases])
    cmd = "python bench/timeseries_engine.py" + (f" --repeats {args.repeats}" if args.repeats > 1 else "") \
        + (f" --threads {args.threads}" if args.threads else "") + (" --via api" if args.via == "api" else "") \
        + "".join(f" --set {o}" for o in args.overrides) + " --write"
    write_section("timeseries_engine", "\n".join([
        "## Time series: ETTh1 through the engine against a plain PyTorch loop",
        "",
        f"`{cmd}`",
        "",
        f"Machine: {machine()}; OMP_NUM_THREADS={args.threads or 'unset'}; 2 cores shared with "
        "other jobs (load average before / after each run in the table). Runs alternate.",
        "",
        table(["side", "wall s", "test MSE", "test MAE", "load", "phases (s)"], rows),
        "",
        f"Engine / plain loop wall time: **{ratio:.3f}** (sum over runs).",
    ]))


if __name__ == "__main__":
    main()
