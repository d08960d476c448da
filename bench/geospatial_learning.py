"""Learning signal of the geospatial plugin on its embedded water scenes, through the product.

Every number comes from ``domainfm.pretrain``, ``domainfm.finetune`` and ``domainfm.evaluate``
with run configs; this script only chooses label counts and seeds and writes the tables.
The generated places are split into train, validation and test; the test places are never
trained on, and nothing is selected on them.

1. Masked-loss drop: ``domainfm.evaluate`` of a pretraining run (no head named) scores the
   MAE's masked-patch MSE on the test places (``test_loss``, masks drawn from the evaluation
   seed, so both runs below see the same masks). "Before" is the same pretraining config run
   for one step at lr 1e-12: its seed gives the pretraining run's exact initial weights, and
   one AdamW step of that size moves a weight by about 1e-12, so it scores the model at
   initialisation (a run of 0 steps writes no checkpoint). "After" is the pretraining run.
2. Few-label water segmentation: fine-tune from the pretrained run and from random
   initialisation (same seed, budget and learning rates) on the same seeded subset of labelled
   training windows, for each label count and seed; ``domainfm.evaluate`` scores each on the
   test places. Fine-tuning does not validate (nothing is selected: fixed steps, last weights).

    .venv/bin/python bench/geospatial_learning.py [--pretrain-steps 3000] [--places 96]
        [--labels 4 16 64] [--seeds 0 1 2] [--mode full|linear-probe]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import domainfm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, write_section  # noqa: E402

DATA: dict[str, Any] = {"places": 96, "size": 64, "chip_size": 32, "batch_size": 8}
ENCODER: dict[str, Any] = {}  # overrides of the tiny preset (--encoder-params)
EVAL_SEED = 1000  # the masks of the held-out loss, the same for every pretraining run
INIT_LR = 1e-12  # the "before" run: one step this small leaves the initial weights


def common(args: argparse.Namespace, root: str, out: Path) -> dict[str, Any]:
    """What every run shares: the data, the encoder, the trainer."""
    return {"data": {"name": "geospatial.water", "params": {**DATA, "root": root}},
            "encoder": {"name": "geospatial.prithvi", "preset": "tiny", "params": dict(ENCODER)},
            "output_dir": str(out),
            "trainer": {"accelerator": args.device, "enable_progress_bar": False,
                        "log_every_n_steps": 50, "limit_val_batches": 0}}


def pretrain(args: argparse.Namespace, root: str, out: Path, steps: int, lr: float) -> Path:
    cfg = common(args, root, out)
    cfg.update(seed=0, objective={"name": "geospatial.mae"},
               optim={"lr": lr, "weight_decay": 0.05, "warmup": 0.05})
    cfg["trainer"]["max_steps"] = steps
    return domainfm.pretrain(cfg).run_dir


def evaluate(args: argparse.Namespace, run_dir: Path, out: Path, seed: int) -> dict[str, float]:
    """``domainfm.evaluate`` on the test split of the run's own data."""
    return domainfm.evaluate({"init": str(run_dir), "output_dir": str(out), "seed": seed,
                              "trainer": {"accelerator": args.device,
                                          "enable_progress_bar": False}}).metrics


def finetune(args: argparse.Namespace, root: str, out: Path, labels: int, seed: int,
             init: Path | None) -> Path:
    cfg = common(args, root, out)
    cfg["data"]["params"]["max_train_samples"] = labels
    cfg.update(seed=seed, head={"name": "geospatial.segmentation"},
               metrics=["geospatial.miou", {"name": "geospatial.class_iou",
                                            "params": {"class_index": 1}},
                        "geospatial.pixel_accuracy"],
               init=str(init) if init is not None else None, mode=args.mode,
               optim={"lr": args.finetune_lr, "weight_decay": 0.05,
                      "head_lr_scale": args.head_lr_scale})
    cfg["trainer"]["max_steps"] = args.finetune_steps
    return domainfm.finetune(cfg).run_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--pretrain-lr", type=float, default=1.5e-3)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--labels", type=int, nargs="+", default=[4, 16, 64],
                        help="labelled training windows (several: a label-efficiency sweep)")
    parser.add_argument("--places", type=int, default=96,
                        help="generated places (a quarter for validation, a quarter for test)")
    parser.add_argument("--finetune-lr", type=float, default=2e-4)
    parser.add_argument("--head-lr-scale", type=float, default=10.0)
    parser.add_argument("--mode", default="full", choices=["full", "linear-probe"],
                        help="fine-tuning mode (linear-probe: encoder frozen, head trained)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--encoder-params", type=json.loads, default={},
                        help='overrides of the tiny preset, e.g. \'{"embed_dim": 128, "depth": 4}\'')
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    DATA["places"] = args.places
    ENCODER.update(args.encoder_params)
    work = Path(tempfile.mkdtemp(prefix="geospatial-learning-"))
    root = str(work / "data")
    start = time.time()

    before_run = pretrain(args, root, work / "pretrain-init", 1, INIT_LR)
    before = evaluate(args, before_run, work / "eval-init", EVAL_SEED)["test_loss"]
    run = pretrain(args, root, work / "pretrain", args.pretrain_steps, args.pretrain_lr)
    pre_time = time.time() - start
    after = evaluate(args, run, work / "eval-pretrain", EVAL_SEED)["test_loss"]

    rows, summary, diffs = [], [], []
    ft_start = time.time()
    for labels in args.labels:
        scores: dict[str, list[float]] = {"pretrained": [], "random": []}
        for seed in args.seeds:
            for init in ("pretrained", "random"):
                name = f"{labels}-{init}-{seed}"
                ft = finetune(args, root, work / f"ft-{name}", labels, seed,
                              run if init == "pretrained" else None)
                m = evaluate(args, ft, work / f"eval-{name}", 0)
                scores[init].append(m["test/miou"])
                rows.append([labels, seed, init, f"{m['test/miou']:.3f}",
                             f"{m['test/class_iou']:.3f}", f"{m['test/pixel_accuracy']:.3f}"])
                print(rows[-1], flush=True)
        diffs += [p - r for p, r in zip(scores["pretrained"], scores["random"])]
        wins = sum(p > r for p, r in zip(scores["pretrained"], scores["random"]))
        mean = {k: statistics.mean(v) for k, v in scores.items()}
        summary.append(f"{labels} labelled windows: pretrained **{mean['pretrained']:.3f}** vs "
                       f"random **{mean['random']:.3f}**, ahead on {wins} of {len(args.seeds)} "
                       f"seeds, mean difference {mean['pretrained'] - mean['random']:+.3f}")
    ft_time = time.time() - ft_start
    ahead = sum(d > 0 for d in diffs)
    verdict = (f"Overall, pretrained is ahead of random on {ahead} of {len(diffs)} paired runs "
               f"(same label count and seed); paired differences {min(diffs):+.3f} to "
               f"{max(diffs):+.3f} mIoU: "
               + ("pretraining helps on every pair." if ahead == len(diffs) else
                  "no gain that holds across seeds and label counts."))
    drop = 1 - after / before
    command = (f"`.venv/bin/python bench/geospatial_learning.py --pretrain-steps "
               f"{args.pretrain_steps} --pretrain-lr {args.pretrain_lr:g} --finetune-steps "
               f"{args.finetune_steps} --labels {' '.join(map(str, args.labels))} --places "
               f"{args.places} --mode {args.mode} --finetune-lr {args.finetune_lr:g} "
               f"--head-lr-scale {args.head_lr_scale:g} --seeds {' '.join(map(str, args.seeds))}"
               f" --threads {args.threads}"
               + (f" --encoder-params '{json.dumps(ENCODER)}'" if ENCODER else "") + "`")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    md = "\n".join([
        "## Geospatial: learning signal on the embedded water scenes",
        "",
        f"Command: {command}. Machine: {machine()}; device {args.device}, {args.threads} "
        f"thread(s), shared with other work (load average {load} at the end).",
        "",
        "Every run is a run config through `domainfm.pretrain`, `domainfm.finetune` and "
        "`domainfm.evaluate`; the script only orchestrates. "
        f"Data: `geospatial.water` ({DATA['places']} generated places of {DATA['size']}x"
        f"{DATA['size']} px, 3 dates, 6 HLS bands, {DATA['chip_size']} px windows; places split "
        "50/25/25 into train, validation and test). Pretraining uses the training places' "
        "images; every score is on the test places, which nothing trained on or selected with. "
        f"Encoder `geospatial.prithvi` preset tiny"
        f"{' with ' + json.dumps(ENCODER) if ENCODER else ''}; objective `geospatial.mae` "
        "(mask 0.75).",
        "",
        f"**Pretraining** ({args.pretrain_steps} steps, lr {args.pretrain_lr:g}, {pre_time:.0f} s): "
        "masked-patch MSE on the test places (`domainfm.evaluate` of the pretraining run, "
        f"`test_loss`, evaluation seed {EVAL_SEED}, so the same masks) {before:.4f} -> "
        f"{after:.4f}, a **{100 * drop:.1f}% reduction** "
        f"({'meets' if drop >= 0.5 else 'MISSES'} the 50% bar). \"Before\" is the same "
        f"pretraining config run for 1 step at lr {INIT_LR:g} (the pretraining run's initial "
        "weights, same seed, moved by about 1e-12).",
        "",
        f"**Few-label segmentation** ({args.finetune_steps} steps, "
        f"{'full fine-tuning' if args.mode == 'full' else 'encoder frozen, head trained'}, "
        f"encoder lr {args.finetune_lr:g}, head lr {args.head_lr_scale:g}x that, the same for "
        "both initialisations, the same labelled training windows for every seed, last "
        "weights, no validation; `domainfm.evaluate` on the test places, macro mIoU, mean of "
        f"seeds {args.seeds}; {ft_time:.0f} s for all fine-tuning and evaluation runs):",
        "",
        *[f"- {line}" for line in summary],
        "",
        verdict,
        "",
        table(["labelled windows", "seed", "init", "test mIoU (macro)", "test water IoU",
               "test pixel accuracy"], rows),
    ])
    if not args.no_write:
        write_section("geospatial-learning", md)
    print(md)


if __name__ == "__main__":
    main()
