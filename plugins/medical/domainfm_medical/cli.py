"""Reconstruct missing MRI modalities from the command line, as NIfTI (and a PNG to look at).

``domainfm predict`` serves fine-tuned models; reconstruction needs the pretraining decoder, so
it runs from a *pretrained* export or run folder::

    python -m domainfm_medical.cli reconstruct runs/medical-pretrain CASE_DIR OUT_DIR --missing t2 --png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from domainfm.errors import DomainfmError
from domainfm.io import atomic_path


def slices_png(volumes: dict[str, np.ndarray], path: Path) -> Path:
    """Middle axial slice of each volume side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(volumes), figsize=(3 * len(volumes), 3.2), squeeze=False)
    for ax, (title, volume) in zip(axes[0], volumes.items()):
        ax.imshow(np.rot90(volume[:, :, volume.shape[2] // 2]), cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    import nibabel as nib

    import domainfm
    from domainfm_medical.predict import build_reconstruct, read_case

    parser = argparse.ArgumentParser(prog="python -m domainfm_medical.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("reconstruct", help="write the missing modalities of a case as NIfTI")
    rec.add_argument("model", help="pretrained export or run folder (with the multimodal_mae objective)")
    rec.add_argument("source", help="case folder or single NIfTI file")
    rec.add_argument("destination")
    rec.add_argument("--missing", nargs="*", default=None, help="modalities to reconstruct (default: absent ones)")
    rec.add_argument("--modality", default="", help="modality of a single input file")
    rec.add_argument("--png", action="store_true", help="also write a PNG of the middle slices")
    args = parser.parse_args(argv)
    try:
        model = domainfm.load_model(args.model)
        written = build_reconstruct(missing=args.missing, modality=args.modality)(
            model, Path(args.source), Path(args.destination))
        for path in written:
            print(path)
        if args.png:
            case, image, present, _ = read_case(args.source, model.encoder.modalities, args.modality)
            shown = {f"input {m}": image[0, i].numpy() for i, m in enumerate(model.encoder.modalities)
                     if present[0, i]}
            shown.update({f"reconstructed {p.name.split('_')[-1].split('.')[0]}": np.asarray(nib.load(str(p)).dataobj)
                          for p in written})
            print(slices_png(shown, Path(args.destination) / f"{case}_reconstruction.png"))
    except DomainfmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
