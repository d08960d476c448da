"""NIfTI in, NIfTI out: tumour segmentation and missing-modality reconstruction.

Input is a case folder (modality files matched by name as in the datamodule: ``t1.nii.gz``,
``BraTS_0001_flair.nii.gz``...) or a single NIfTI file (its modality from its name, or the
``modality`` parameter). Volumes are z-scored over non-zero voxels per modality like in
training and processed by sliding windows of the training crop, in the input's voxel grid: the
outputs have the input's shape and affine. Inputs should already be at the training spacing
(1 mm for the presets); predictors do not resample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.transforms import NormalizeIntensity

from domainfm.errors import DomainfmError
from domainfm_medical.data import LoadCased, _stem, case_from_folder
from domainfm_medical.heads import sliding_window_segment
from domainfm_medical.io import is_nifti, write_volume

BRATS = (1, 2, 4)  # necrotic core, oedema, enhancing: recovered from TC/WT/ET


def read_case(source: str | Path, modalities: Sequence[str], modality: str = ""
              ) -> tuple[str, torch.Tensor, torch.Tensor, np.ndarray]:
    """``(case, image (1, M, X, Y, Z) z-scored, present (1, M), affine)`` from a folder or file."""
    source = Path(source)
    if source.is_dir():
        record = case_from_folder(source, modalities)
    elif is_nifti(source):
        name = modality or next((m for m in modalities if _stem(source) == m or _stem(source).endswith("_" + m)), "")
        if name not in modalities:
            raise DomainfmError(f"cannot tell the modality of {str(source)!r}: name it after one of "
                                f"{list(modalities)} or pass the predictor parameter 'modality'")
        record = {"case": _stem(source).removesuffix("_" + name) or name, name: str(source)}
    else:
        raise DomainfmError(f"input {str(source)!r} is neither a case folder nor a .nii/.nii.gz file")
    loaded = LoadCased(modalities, None)({**record, "mask": None})
    image = NormalizeIntensity(nonzero=True, channel_wise=True)(loaded["image"])
    image = torch.as_tensor(image).as_subclass(torch.Tensor).float()
    return record["case"], image[None], loaded["present"][None], loaded["image"].affine.numpy()


def labels_from_logits(logits: torch.Tensor, activation: str, labels: Sequence[int] | None) -> np.ndarray:
    """A label volume: BraTS 1/2/4 from sigmoid TC/WT/ET, or ``labels[argmax]`` for softmax."""
    if activation == "sigmoid":
        tc, wt, et = (logits[0, :3] > 0).numpy()
        out = np.zeros(tc.shape, np.int16)
        out[wt] = 2
        out[tc] = 1
        out[et] = 4
        return out
    index = logits[0].argmax(0).numpy()
    lut = np.asarray(labels if labels else range(logits.shape[1]), dtype=np.int16)
    return lut[index]


def build_segment(*, modality: str = "", overlap: float = 0.5,
                  labels: list[int] | None = None) -> Callable[[Any, Path, Path], list[Path]]:
    """``medical.segment``: ``<destination>/<case>_seg.nii.gz`` with the input's affine and shape."""

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        encoder, head = model.encoder.eval(), model.head.eval()
        case, image, present, affine = read_case(source, encoder.modalities, modality)
        with torch.no_grad():
            logits = sliding_window_segment(encoder, head, image, present, overlap=overlap)
        seg = labels_from_logits(logits, head.activation, labels)
        return [write_volume(seg, affine, Path(destination) / f"{case}_seg.nii.gz", dtype=np.int16)]

    return run


def build_reconstruct(*, missing: list[str] | None = None, modality: str = "",
                      overlap: float = 0.5) -> Callable[[Any, Path, Path], list[Path]]:
    """``medical.reconstruct``: write ``<case>_<modality>.nii.gz`` for each missing modality
    (by default every modality the input lacks), in z-scored units, with the input's affine."""

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        encoder, objective = model.encoder.eval(), getattr(model, "objective", None)
        if objective is None or not hasattr(objective, "reconstruct"):
            raise DomainfmError("medical.reconstruct needs a pretrained export that holds the "
                                "medical.multimodal_mae objective (its decoder)")
        objective.eval()
        case, image, present, affine = read_case(source, encoder.modalities, modality)
        wanted = list(missing) if missing else [m for m, p in zip(encoder.modalities, present[0]) if not p]
        if not wanted:
            raise DomainfmError(f"case {case!r} has every modality; pass 'missing' to choose what to reconstruct")
        for name in wanted:
            if name not in encoder.modalities:
                raise DomainfmError(f"unknown modality {name!r} in 'missing'; known: {list(encoder.modalities)}")

        def predict(window: torch.Tensor) -> torch.Tensor:
            batch = {"image": window, "present": present.expand(window.shape[0], -1)}
            out = objective.reconstruct(encoder, batch, missing=wanted)
            return torch.stack([out[m] for m in wanted], 1)

        with torch.no_grad():
            volumes = sliding_window_inference(image, (encoder.img_size,) * 3, 2, predict, overlap=overlap,
                                               mode="gaussian")
        written = []
        for i, name in enumerate(wanted):
            path = Path(destination) / f"{case}_{name}.nii.gz"
            written.append(write_volume(volumes[0, i].numpy().astype(np.float32), affine, path))
        return written

    return run


def example_case(folder: Path, *, shape: tuple[int, int, int] = (40, 36, 32), drop: Sequence[str] = ("t2",)) -> Path:
    """A synthetic case larger than the tiny crop (so sliding windows are used), one modality
    dropped; returns its folder."""
    from domainfm_medical.synthetic import MODALITIES, make_case

    volumes, _, _ = make_case(np.random.default_rng(7), max(shape))
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-20.0, -18.0, -16.0]
    case = Path(folder) / "example_case"
    for name in MODALITIES:
        if name not in drop:
            write_volume(volumes[name][: shape[0], : shape[1], : shape[2]], affine, case / f"{name}.nii.gz")
    return case

