"""TTM r2 512-96 speed: training throughput (windows/s) and inference latency, side by side
with transformers' PatchTSMixer of similar size and with granite-tsfm's own TTM when installed.

Models are timed round-robin (one step of each, repeated), so load from other processes falls
on all of them alike; medians are reported. CPU by default; ``--device cuda`` times a GPU in
bf16 autocast with the same script.

    .venv/bin/python bench/timeseries_speed.py            # ours only (+ others if importable)
    .venv-bench-timeseries/bin/python bench/timeseries_speed.py   # with transformers + granite-tsfm
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, write_section  # noqa: E402

from domainfm_timeseries.encoder import build_ttm  # noqa: E402
from domainfm_timeseries.heads import build_forecast_head  # noqa: E402


class Ours(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = build_ttm(preset="r2_512_96")
        self.head = build_forecast_head(self.encoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = {"past_values": x}
        return self.head(self.encoder(batch), batch)


class HF(torch.nn.Module):
    """A transformers model returning its point forecast."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(past_values=x).prediction_outputs


def candidates(channels: int) -> dict[str, torch.nn.Module]:
    models: dict[str, torch.nn.Module] = {"domainfm timeseries.ttm (r2 512-96)": Ours()}
    try:
        from transformers import PatchTSMixerConfig, PatchTSMixerForPrediction
        cfg = PatchTSMixerConfig(context_length=512, prediction_length=96, patch_length=64,
                                 patch_stride=64, d_model=160, num_layers=5, expansion_factor=2,
                                 num_input_channels=channels, dropout=0.2, head_dropout=0.7,
                                 mode="common_channel", gated_attn=True, scaling="std")
        models["transformers PatchTSMixer (d160, 5 layers)"] = HF(PatchTSMixerForPrediction(cfg))
    except ImportError:
        print("transformers not importable: PatchTSMixer skipped", file=sys.stderr)
    try:
        from tsfm_public.models.tinytimemixer import TinyTimeMixerConfig, TinyTimeMixerForPrediction
        cfg = TinyTimeMixerConfig(context_length=512, prediction_length=96, patch_length=64,
                                  patch_stride=64, d_model=192, num_layers=2,
                                  adaptive_patching_levels=3, decoder_d_model=128,
                                  decoder_num_layers=2, expansion_factor=2, dropout=0.2,
                                  head_dropout=0.7, num_input_channels=channels)
        models["granite-tsfm TinyTimeMixer (r2 512-96)"] = HF(TinyTimeMixerForPrediction(cfg))
    except ImportError:
        print("granite-tsfm not importable: skipped", file=sys.stderr)
    return models


def forward_mflops(model: torch.nn.Module, window: torch.Tensor) -> float:
    """Matrix-multiply FLOPs of one forward pass (what the models differ in besides overhead)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(window)
    return counter.get_total_flops() / 1e6


def ratios(rows: list[list[str]]) -> str:
    """Ours against each other model: training speed, latency and work, as ratios."""
    ours = rows[0]
    parts = [f"vs {other[0]}: training {float(ours[3]) / float(other[3]):.2f}x as fast, "
             f"batch inference {float(ours[5]) / float(other[5]):.2f}x as fast, "
             f"batch-1 latency {float(ours[4]) / float(other[4]):.2f}x theirs, with "
             f"{float(ours[2]) / float(other[2]):.2f}x their forward FLOPs" for other in rows[1:]]
    return "Ours " + "; ".join(parts) + "." if parts else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())
    models = {k: m.to(device) for k, m in candidates(args.channels).items()}
    optims = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
    x = torch.randn(args.batch_size, 512, args.channels, device=device)
    y = torch.randn(args.batch_size, 96, args.channels, device=device)
    one = x[:1]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step(name: str) -> float:
        model, opt = models[name].train(), optims[name]
        sync()
        start = time.perf_counter()
        with autocast:
            loss = torch.nn.functional.mse_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - start

    @torch.no_grad()
    def infer(name: str, window: torch.Tensor) -> float:
        model = models[name].eval()
        sync()
        start = time.perf_counter()
        with autocast:
            model(window)
        sync()
        return time.perf_counter() - start

    for name in models:  # warm-up
        train_step(name), infer(name, one), infer(name, x)
    train_t = {k: [] for k in models}
    infer_t = {k: [] for k in models}
    batch_t = {k: [] for k in models}
    for _ in range(args.repeats):
        for name in models:
            train_t[name].append(train_step(name))
            for _ in range(5):
                infer_t[name].append(infer(name, one))
            batch_t[name].append(infer(name, x))
    flops = {name: forward_mflops(model, one) for name, model in models.items()}
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    rows = []
    for name, model in models.items():
        step = statistics.median(train_t[name])
        rows.append([name, f"{sum(p.numel() for p in model.parameters()):,}",
                     f"{flops[name]:.0f}", f"{args.batch_size / step:.1f}",
                     f"{1e3 * statistics.median(infer_t[name]):.2f}",
                     f"{args.batch_size / statistics.median(batch_t[name]):.0f}"])
        print(rows[-1])
    cmd = (f"python bench/timeseries_speed.py --device {args.device} --threads {args.threads} "
           f"--batch-size {args.batch_size} --repeats {args.repeats}")
    text = "\n".join([
        f"## Time series: TTM 512-96 speed ({args.device})", "",
        f"`{cmd}` (run with `.venv-bench-timeseries/bin/python` to include the transformers and "
        "granite-tsfm models)", "",
        f"Machine: {machine()}" + (f" (cores shared with other jobs: load average "
                                   f"{os.getloadavg()[0]:.1f} at the end; models timed "
                                   "round-robin, medians)" if device.type == "cpu" else "")
        + (f"; peak GPU memory {peak:.0f} MiB" if peak else "") + ".", "",
        f"Training: one AdamW step on a batch of {args.batch_size} windows x {args.channels} "
        "channels (context 512, horizon 96, MSE). Inference: one window (7 channels), batch 1 "
        "(latency, where per-operation overhead dominates), and the training batch without "
        "gradients (throughput).", "",
        table(["model", "parameters", "forward MFLOP / window", "train windows/s",
               "inference latency (ms)", f"batch-{args.batch_size} inference windows/s"], rows),
        "", ratios(rows),
    ])
    if not args.no_write:
        write_section(f"timeseries_speed_{device.type}", text)


if __name__ == "__main__":
    main()
