"""ETTh1 / ETTh2 under the standard long-horizon protocol, every number through domainfm.

This script only orchestrates: each stage is one shipped run config (plugins/timeseries/configs)
given to ``domainfm.finetune`` or ``domainfm.evaluate``, exactly what the ``domainfm`` command
runs; it trains nothing itself.

1. ``finetune_etth1.yaml``: TTM r2 512-96 trained from scratch on ETTh1's training split
   (12 months), validated every epoch, the best validation epoch kept (checkpoints/best.ckpt);
2. ``evaluate_etth1.yaml``: that model's test MSE/MAE on scaled data over all 7 channels;
3. ``evaluate_etth2.yaml``: zero-shot, the same model on ETTh2's test split;
4. ``fewshot_etth2.yaml``: 5% few-shot on ETTh2 (backbone frozen, decoder + head trained on the
   last 5% of the training windows, best validation epoch kept), scored by ``evaluate_etth2.yaml``
   with ``init`` the few-shot run.

    .venv/bin/python scripts/timeseries_etth1.py [--write]

Runs go to runs/ (the configs' output_dir). ``--data-dir`` points at a folder with ETTh1.csv and
ETTh2.csv (default ../shared/data/timeseries); without them the script says so and exits.
``--reuse`` keeps a stage's run folder when it already holds its result (metrics.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path("plugins") / "timeseries" / "configs"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "timeseries"


def stage(verb: str, config: str, overrides: list[str], reuse: bool, log: Any) -> dict[str, Any]:
    """One ``domainfm <verb> --config <config> --set ...`` through the public API."""
    import domainfm

    command = f"domainfm {verb} --config {CONFIGS / config}" + "".join(f" --set {o}" for o in overrides)
    folder = Path(domainfm.load_config(ROOT / CONFIGS / config, overrides).output_dir)
    summary = folder / "metrics.json"
    if reuse and summary.is_file():
        log(f"reusing {folder} ({command})")
        seconds = None
    else:
        log(command)
        start = time.perf_counter()
        getattr(domainfm, verb)(ROOT / CONFIGS / config, overrides)
        seconds = time.perf_counter() - start
    raw = json.loads(summary.read_text())
    prefix = "test/" if verb == "evaluate" else "val/"
    metrics = {k[len(prefix):]: v for k, v in raw["final"].items() if k.startswith(prefix)}
    log(f"  {metrics}" + (f" ({seconds / 60:.1f} min)" if seconds else ""))
    return {"command": command, "metrics": metrics, "best": raw.get("best"), "seconds": seconds,
            "folder": str(folder)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA),
                        help="folder with ETTh1.csv and ETTh2.csv (default ../shared/data/timeseries)")
    parser.add_argument("--reuse", action="store_true", help="keep stages that already ran")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args()
    data = Path(args.data_dir)
    missing = [n for n in ("ETTh1.csv", "ETTh2.csv") if not (data / n).is_file()]
    if missing:
        sys.exit(f"skipped: {', '.join(str(data / n) for n in missing)} missing; pass --data-dir "
                 "(see ../shared/data/README.md)")
    os.chdir(ROOT)  # the configs' paths (runs/, ../shared/data) are relative to the repository

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def path(name: str) -> list[str]:
        given = (data / name).resolve()
        default = (ROOT.parent / "shared" / "data" / "timeseries" / name).resolve()
        return [] if given == default else [f"data.params.path={given}"]

    etth1 = stage("finetune", "finetune_etth1.yaml", path("ETTh1.csv"), args.reuse, log)
    test1 = stage("evaluate", "evaluate_etth1.yaml", path("ETTh1.csv"), args.reuse, log)
    zero = stage("evaluate", "evaluate_etth2.yaml", path("ETTh2.csv"), args.reuse, log)
    few = stage("finetune", "fewshot_etth2.yaml", path("ETTh2.csv"), args.reuse, log)
    few_test = stage("evaluate", "evaluate_etth2.yaml",
                     [f"init={few['folder']}", f"output_dir={few['folder']}-test", *path("ETTh2.csv")],
                     args.reuse, log)
    results = {"etth1": test1, "etth2_zero_shot": zero, "etth2_few_shot_5pct": few_test,
               "etth1_training": etth1, "few_shot_training": few}
    print(json.dumps(results, indent=2))
    if args.write:
        write(results)


def write(r: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from report import machine, table, write_section

    def row(name: str, key: str, reference: str) -> list[str]:
        m = r[key]["metrics"]
        return [name, f"{m['mse']:.3f}", f"{m['mae']:.3f}", reference, f"`{r[key]['command']}`"]

    def minutes(key: str) -> str:
        s = r[key]["seconds"]
        return f"{s / 60:.1f} min" if s else "time not measured (reused run)"

    train, few = r["etth1_training"], r["few_shot_training"]
    rows = [
        row("ETTh1 (trained from scratch, full train split)", "etth1",
            "TTM r2 zero-shot .363; PatchTST ~.37"),
        row("ETTh2 zero-shot (the ETTh1 model)", "etth2_zero_shot", "TTM r2 zero-shot .276"),
        row("ETTh2 5% few-shot (backbone frozen)", "etth2_few_shot_5pct",
            "TTM r2 5% few-shot .273"),
    ]
    write_section("timeseries_etth1", "\n".join([
        "## Time series: TTM r2 512-96 on ETTh1 / ETTh2 (standard protocol)",
        "",
        "`.venv/bin/python scripts/timeseries_etth1.py --write` runs the shipped configs below "
        "through `domainfm.finetune` / `domainfm.evaluate` (the same as the `domainfm` commands "
        "listed), in this order; it has no training loop of its own.",
        "",
        f"Machine: {machine()} (2 cores shared with other jobs). Model: 805,280 parameters, "
        "horizon 96, context 512; test windows 2,785 per dataset; MSE/MAE on data standardised "
        "with the training split's statistics, averaged over all 7 channels.",
        "",
        table(["setting", "test MSE", "test MAE", "reference", "command"], rows),
        "",
        f"Training: `{train['command']}` ({minutes('etth1_training')}; best "
        f"{train['best']['monitor']} {train['best']['score']:.4f}, kept as checkpoints/best.ckpt). "
        f"Few-shot: `{few['command']}` ({minutes('few_shot_training')}; best "
        f"{few['best']['monitor']} {few['best']['score']:.4f}).",
    ]))


if __name__ == "__main__":
    main()
