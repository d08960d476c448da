"""GCC pretraining throughput and peak memory for the paper preset (GIN 64 x 4, E2E InfoNCE).

Two numbers: the training step alone (forward + backward + AdamW on pre-sampled batches moved
to ``--device``) and end to end (sampling in this process, then the step). Peak memory is the
process's maximum resident set on CPU, ``torch.cuda.max_memory_allocated`` on a GPU, where
``--precision bf16`` runs the step under bfloat16 autocast.

    .venv/bin/python bench/graph_pretrain.py [--device cpu|cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from domainfm.engine.optim import adamw
from domainfm_graph.data import PretrainDataModule
from domainfm_graph.encoder import build_encoder
from domainfm_graph.objective import build_objective

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, peak_rss_mib, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "graph"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    europe = Path(args.data) / "europe-airports.edgelist"
    edgelists = [str(europe)] if europe.is_file() else []
    dm = PretrainDataModule(edgelists=edgelists, generated=8, batch_size=args.batch_size,
                            instances=args.batch_size * (2 * args.steps + 2))
    dm.setup("fit")
    torch.manual_seed(0)
    encoder = build_encoder("gcc").to(device)
    objective = build_objective(encoder).to(device)
    optimizer = adamw(encoder.parameters(), lr=5e-3, weight_decay=1e-5)  # the engine's
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step(batch: dict) -> None:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            loss = objective(encoder, batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    indices = list(range(len(dm.train)))
    batches = [dm.train.__getitems__(indices[i * args.batch_size:(i + 1) * args.batch_size])
               for i in range(args.steps + 1)]
    step(batches[0])  # warm up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start, cpu = time.perf_counter(), time.process_time()
    for batch in batches[1:]:
        step(batch)
    sync()
    model_only = args.steps * args.batch_size / (time.perf_counter() - start)
    model_cpu = args.steps * args.batch_size / (time.process_time() - cpu)
    start = time.perf_counter()
    for i in range(args.steps + 1, 2 * args.steps + 1):
        step(dm.train.__getitems__(indices[i * args.batch_size:(i + 1) * args.batch_size]))
    sync()
    end_to_end = args.steps * args.batch_size / (time.perf_counter() - start)
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (GPU allocated)"
    else:
        peak = f"{peak_rss_mib():.0f} MiB (process RSS)"
    params = sum(p.numel() for p in encoder.parameters())
    row = [args.device, args.precision, args.threads, args.batch_size,
           f"{model_only:.0f} (CPU time: {model_cpu:.0f})",
           f"{end_to_end:.0f}", peak]
    print(row)
    if args.no_report:
        return
    key = f"graph-pretrain-{args.device.split(':')[0]}-{args.precision}"
    write_section(key, "\n".join([
        f"## Graph: GCC pretraining throughput, paper preset ({params:,} parameters), "
        f"{args.device} {args.precision}",
        "",
        table(["device", "precision", "threads", "batch", "instances/s (step only)",
               "instances/s (with sampling)", "peak memory"], [row]),
        "",
        "An instance is a pair of RWR views; a step encodes both, InfoNCE over the batch, "
        "backward, gradient clipping and AdamW. Data: Europe airports (when present), networkx's "
        "bundled graphs and 8 generated graphs.",
        "",
        f"Load average while measuring: {os.getloadavg()[0]:.1f} (shared machine).",
        "",
        f"Command: `python bench/graph_pretrain.py --device {args.device} --precision "
        f"{args.precision} --threads {args.threads}`.",
        f"Machine: {machine()}.",
    ]))


if __name__ == "__main__":
    main()
