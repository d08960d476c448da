"""Tiled whole-scene prediction: peak memory against scene size, and tiled vs untiled output.

Generated single-date 6-band scenes of 512, 1024 and 2048 px are predicted in 224 px tiles
(overlap 32) by a Prithvi encoder (tiny widths, patch 16) with the segmentation head. Each
scene runs in its own process, so its peak memory is its own: peak resident set size on CPU
(and the rise over the same process after a warm-up prediction), or peak allocated GPU memory.
Then, on the 2048 px scene: (a) a per-pixel model (1x1 convolution) predicted tiled and untiled
must agree exactly, which checks the tiling and blending; (b) the ViT itself, whose attention
spans the whole input, is compared tiled against one untiled pass over all 16,384 tokens.

    .venv/bin/python bench/geospatial_tiled.py [--device cpu|cuda] [--sizes 512 1024 2048]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, peak_rss_mib, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TILE, OVERLAP, BATCH = 224, 32, 4


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Restart the peak-RSS count from the current RSS (Linux clear_refs), where allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def model(device: str):
    from domainfm_geospatial.encoder import build_prithvi
    from domainfm_geospatial.heads import build_segmentation

    torch.manual_seed(0)
    encoder = build_prithvi("tiny", img_size=TILE, patch_size=16, num_frames=1).to(device).eval()
    head = build_segmentation(encoder, num_classes=2).to(device).eval()
    return encoder, head


def prep():
    from domainfm_geospatial.data import Preprocess

    return Preprocess.create(file_bands=None, bands=None, mean=None, std=None, frames=1)


def run_one(scene: Path, out: Path, device: str) -> dict:
    """Predict ``scene`` tiled; memory measured after a warm-up on a one-tile scene."""
    from domainfm_geospatial.predict import predict_scene
    from domainfm_geospatial.synthetic import scene_large

    torch.set_num_threads(1)
    encoder, head = model(device)
    fn = lambda x: head(encoder({"image": x.to(device)}), {"image": x}).cpu()  # noqa: E731
    warm = scene_large(out.parent / "warm.tif", size=2 * TILE - OVERLAP)  # one full batch of tiles
    predict_scene(warm, out.parent / "warm_pred.tif", fn, prep(), tile=TILE, overlap=OVERLAP,
                  channels=2, batch_size=BATCH, progress=False)
    gc.collect()
    reset_peak()
    base = current_rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    predict_scene(scene, out, fn, prep(), tile=TILE, overlap=OVERLAP, channels=2,
                  batch_size=BATCH, progress=False)
    elapsed = time.perf_counter() - start
    peak = peak_rss_mib()
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        same_grid = (src.crs, src.transform, src.shape) == (dst.crs, dst.transform, dst.shape)
        size = src.width
    result = {"size": size, "seconds": elapsed, "peak_mib": peak, "rise_mib": peak - base,
              "same_grid": same_grid}
    if device == "cuda":
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def check(scene: Path, work: Path, device: str) -> dict:
    """Tiled vs untiled: exact for a per-pixel model; agreement for the ViT."""
    from domainfm_geospatial.predict import predict_scene

    torch.set_num_threads(1)
    p = prep()
    with rasterio.open(scene) as src:
        raw = src.read().astype(np.float32)
    image, _ = p(raw)
    image = image[None]
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 2, 1)
    local = lambda x: conv(x[:, :, 0])  # noqa: E731
    tiled = predict_scene(scene, work / "local.tif", local, p, tile=TILE, overlap=OVERLAP,
                          channels=2, kind="probabilities", progress=False)
    with torch.no_grad(), rasterio.open(tiled) as t:
        untiled = local(image)[0].softmax(0).numpy()
        local_diff = float(np.abs(t.read() - untiled).max())
    encoder, head = model(device)
    vit = lambda x: head(encoder({"image": x.to(device)}), {"image": x}).cpu()  # noqa: E731
    tiled = predict_scene(scene, work / "vit.tif", vit, p, tile=TILE, overlap=OVERLAP,
                          channels=2, progress=False)
    with torch.no_grad(), rasterio.open(tiled) as t:
        whole = vit(image)[0].argmax(0).numpy()
        agree = float((t.read(1) == whole).mean())
    return {"local_max_abs_diff": local_diff, "vit_class_agreement": agree}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--check-size", type=int, default=2048,
                        help="scene size for the tiled-vs-untiled comparison")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--check", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), Path(args.one[1]), args.device)))
        return
    if args.check:
        print(json.dumps(check(Path(args.check), Path(args.check).parent, args.device)))
        return

    from domainfm_geospatial.predict import tile_origins
    from domainfm_geospatial.synthetic import scene_large

    work = Path(tempfile.mkdtemp(prefix="geospatial-tiled-"))
    rows, results = [], []
    for size in args.sizes:
        scene = scene_large(work / f"scene_{size}.tif", size=size)
        cmd = [sys.executable, __file__, "--one", str(scene), str(work / f"pred_{size}.tif"),
               "--device", args.device]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True,
                                      cwd=ROOT).stdout.strip().splitlines()[-1])
        print(r, flush=True)
        results.append(r)
        tiles = len(tile_origins(size, TILE, TILE - OVERLAP)) ** 2
        rows.append([f"{size} x {size}", f"{size * size * 6 * 4 / 2**20:.0f}", tiles, f"{r['seconds']:.1f}", f"{r['peak_mib']:.0f}",
                     f"{r['rise_mib']:.0f}", r.get("gpu_peak_mib", "-"),
                     "yes" if r["same_grid"] else "NO"])
    checked = work / f"scene_{args.check_size}.tif"
    if not checked.exists():
        scene_large(checked, size=args.check_size)
    cmd = [sys.executable, __file__, "--check", str(checked), "--device", args.device]
    c = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  cwd=ROOT).stdout.strip().splitlines()[-1])
    print(c)
    md = "\n".join([
        f"## Geospatial: tiled scene prediction ({args.device})",
        "",
        f"Command: `.venv/bin/python bench/geospatial_tiled.py --device {args.device} --sizes "
        f"{' '.join(map(str, args.sizes))} --check-size {args.check_size}`. Machine: {machine()}, 1 thread.",
        "",
        f"Tiles {TILE} px, overlap {OVERLAP} px, {BATCH} tiles per forward pass; model: "
        "`geospatial.prithvi` tiny widths with patch 16 and `geospatial.segmentation` (random "
        "weights: this measures the machinery). Peak RSS (VmHWM) is the whole process during the "
        "scene's prediction, after a warm-up on a scene of one full batch of tiles; the rise is "
        "that peak minus the RSS just before the prediction started.",
        "",
        table(["scene", "input MiB (float32)", "tiles", "seconds", "peak RSS MiB",
               "rise MiB", "peak GPU MiB", "output CRS/transform/size = input"], rows),
        "",
        f"- Per-pixel model, tiled vs untiled on the {args.check_size} px scene: max |difference| "
        f"of blended probabilities {c['local_max_abs_diff']:.1e} (the tiling and blending are "
        "exact).",
        f"- Prithvi ViT, tiled vs one untiled pass over the whole {args.check_size} px scene: "
        f"{100 * c['vit_class_agreement']:.2f}% of pixels get the same class. Global attention "
        "makes a ViT's output depend on the whole input, so tiles can differ from the untiled "
        "pass; the untiled pass is the one whose memory grows with the scene.",
    ])
    write_section(f"geospatial-tiled-{args.device}", md)
    print(md)


if __name__ == "__main__":
    main()
