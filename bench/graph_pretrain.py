"""GCC pretraining throughput through domainfm's engine, with and without sampling, per core count.

Each setting is one ``domainfm.pretrain`` run of ``plugins/graph/configs/pretrain_gcc.yaml``
(the paper's GIN, end-to-end InfoNCE, batch 128, the Europe and Brazil airports, networkx's
bundled graphs and 8 generated graphs) in a process of its own, with ``t`` torch threads
(``torch.set_num_threads`` and ``OMP_NUM_THREADS``) and ``w`` DataLoader workers (one thread
each): ``t + w`` cores. A callback reads the engine's loop:

* step only: batch / mean time from ``on_train_batch_start`` to ``on_train_batch_end`` (forward
  of both views, InfoNCE, backward, clipping, AdamW, logging): what the engine does with a batch
  that is ready;
* with sampling: instances / wall time between the ends of the first and last measured steps:
  what training gets, the sampler running in the ``w`` workers (``w = 0``: in the training
  process, between steps, so it adds to the step);
* sampler (``w = 0`` only): batch / time between a step's end and the next one's start, the
  sampler's own rate on one core.

The sampler keeps up when "with sampling" reaches "step only".

    .venv/bin/python bench/graph_pretrain.py                        # settings 1+0, 2+0, 1+1 (t+w)
    .venv/bin/python bench/graph_pretrain.py --settings 1+1 1+2 --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "plugins" / "graph" / "configs" / "pretrain_gcc.yaml"


def child(args: argparse.Namespace) -> None:
    """One setting: a pretraining run through the engine, timed by a callback."""
    import tempfile

    import lightning.pytorch as pl
    import torch

    import domainfm

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "bench"))
    from report import peak_rss_mib

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.ends: list[float] = []
            self.cpu: list[float] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            self.starts.append(time.perf_counter())
            self.cpu.append(time.process_time())

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.ends.append(time.perf_counter())
            self.cpu[-1] = time.process_time() - self.cpu[-1]

    data = Path(args.data)
    edgelists = [str(data / f"{n}-airports.edgelist") for n in ("europe", "brazil")
                 if (data / f"{n}-airports.edgelist").is_file()]
    total = args.warmup + args.steps
    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output_dir={tmp}/run", f"data.params.edgelists={json.dumps(edgelists)}",
                     f"data.params.num_workers={args.workers}",
                     f"data.params.batch_size={args.batch_size}",
                     f"data.params.instances={total * args.batch_size}",
                     f"trainer.max_steps={total}", "trainer.limit_val_batches=0",
                     "trainer.enable_progress_bar=false", f"trainer.accelerator={args.device}",
                     f"trainer.precision={args.precision}"]
        domainfm.pretrain(CONFIG, overrides, callbacks=[timer])
    w = args.warmup
    steps = [e - s for s, e in zip(timer.starts[w:], timer.ends[w:])]
    gaps = [s - e for e, s in zip(timer.ends[w:-1], timer.starts[w + 1:])]
    wall = timer.ends[-1] - timer.ends[w]
    n = len(timer.ends) - 1 - w
    out = {"threads": args.threads, "workers": args.workers,
           "step_only": args.batch_size / (sum(steps) / len(steps)),
           "step_only_cpu": args.batch_size / (sum(timer.cpu[w:]) / len(steps)),
           "with_sampling": n * args.batch_size / wall,
           "sampler": args.batch_size / (sum(gaps) / len(gaps)) if args.workers == 0 else None,
           "peak_rss_mib": peak_rss_mib(), "load": os.getloadavg()[0]}
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "graph"))
    parser.add_argument("--settings", nargs="*", default=["1+0", "2+0", "1+1"],
                        help="torch threads + DataLoader workers, one run each")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting, interleaved")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--child", nargs=2, type=int, metavar=("THREADS", "WORKERS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.threads, args.workers = args.child
        child(args)
        return
    settings = [tuple(map(int, s.split("+"))) for s in args.settings]
    results: dict[tuple[int, int], list[dict]] = {s: [] for s in settings}
    for _ in range(args.repeats):
        for threads, workers in settings:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            cmd = [sys.executable, __file__, "--child", str(threads), str(workers),
                   "--data", args.data, "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--batch-size", str(args.batch_size), "--device", args.device,
                   "--precision", args.precision]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode or not line:
                sys.exit(f"setting {threads}+{workers} failed:\n{done.stderr[-3000:]}")
            results[(threads, workers)].append(json.loads(line[0][7:]))
            print(results[(threads, workers)][-1], flush=True)
    rows = []
    for (threads, workers), runs in results.items():
        def median(key: str) -> float:
            values = sorted(r[key] for r in runs)
            return values[len(values) // 2]

        sampler = f"{median('sampler'):.0f}" if workers == 0 else "in workers"
        ratio = median("with_sampling") / median("step_only")
        rows.append([threads + workers, threads, workers, f"{median('step_only'):.0f}",
                     f"{median('with_sampling'):.0f}", f"{ratio:.2f}", sampler,
                     f"{median('peak_rss_mib'):.0f}", f"{median('load'):.1f}"])
    header = ["cores", "torch threads", "workers", "instances/s, step only",
              "instances/s, with sampling", "with / step only", "sampler alone (1 core)",
              "peak RSS MiB (training process)", "load average"]
    from report import machine, table, write_section

    print(table(header, rows))
    if args.no_report:
        return
    command = "python bench/graph_pretrain.py --settings " + " ".join(args.settings) + \
        f" --steps {args.steps} --repeats {args.repeats}"
    write_section(f"graph-pretrain-{args.device}-fp32" if args.precision == "32-true"
                  else f"graph-pretrain-{args.device}-{args.precision}", "\n".join([
        f"## Graph: GCC pretraining throughput through the engine ({args.device}, {args.precision})",
        "",
        table(header, rows),
        "",
        f"`domainfm.pretrain` on `plugins/graph/configs/pretrain_gcc.yaml` (paper preset, 61,904 "
        f"parameters; batch {args.batch_size}; an instance is a pair of RWR views), {args.steps} "
        f"measured steps after {args.warmup} warm-up steps, median of {args.repeats} run(s) per "
        "setting, each in its own process. Step only: batch / mean time from the engine's "
        "`on_train_batch_start` to `on_train_batch_end`. With sampling: instances / wall time. "
        "Sampler alone: batch / time between steps when the sampler runs in the training "
        "process. The machine is shared: the load average says how many runnable processes "
        "competed for its cores.",
        "",
        f"Command: `{command}`.",
        f"Machine: {machine()}.",
    ]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
