"""NIfTI in, NIfTI out: tumour segmentation and missing-modality reconstruction.

Input is a case folder (modality files matched by name as in the datamodule: ``t1.nii.gz``,
``BraTS_0001_flair.nii.gz``...) or a single NIfTI file (its modality from its name, or the
``modality`` parameter). Preprocessing comes from the model's data specification alone
(``model.spec.data``: the modalities and the per-case z-score over non-zero voxels), so a model
predicts the same with its training data gone. Volumes are processed by sliding windows of the
training crop, in the input's voxel grid: outputs have the input's shape and affine. Inputs
should already be at the training spacing (``spec.data.task["pixdim"]``); predictors do not
resample. Every input is read and validated before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.transforms import NormalizeIntensity

from domainfm.errors import ConfigError, DataError
from domainfm.io import atomic_path
from domainfm.records import Fraction
from domainfm.spec import DataSpec
from domainfm_medical.data.cases import case_from_folder, names_modality, stem
from domainfm_medical.data.transforms import NORMALIZATION, LoadCased
from domainfm_medical.heads import sliding_window_segment
from domainfm_medical.io import is_nifti, write_volume


def model_inputs(data: DataSpec) -> tuple[str, ...]:
    """The modalities a model reads, checked against the preprocessing this plugin knows."""
    if not data.inputs:
        raise DataError("the model's data specification names no input modalities")
    method = (data.normalization or {}).get("method")
    if method != NORMALIZATION["method"]:
        raise DataError(f"the model's data specification asks for normalisation {method!r}; "
                        f"medical predictors apply {NORMALIZATION['method']!r}")
    return tuple(data.inputs)


def read_case(source: str | Path, modalities: Sequence[str], modality: str = ""
              ) -> tuple[str, torch.Tensor, torch.Tensor, np.ndarray]:
    """``(case, image (1, M, X, Y, Z) z-scored, present (1, M), affine)`` from a folder or file."""
    source = Path(source)
    if source.is_dir():
        record = case_from_folder(source, modalities)
    elif not source.exists():
        raise DataError(f"input {str(source)!r} does not exist: it is neither a case folder nor a "
                        ".nii/.nii.gz file")
    elif is_nifti(source):
        name = modality or next((m for m in modalities if names_modality(source, m)), "")
        if name not in modalities:
            raise DataError(f"cannot tell the modality of {str(source)!r}: name it after one of "
                            f"{list(modalities)} or pass the predictor parameter 'modality'")
        record = {"case": stem(source).removesuffix("_" + name) or name, name: str(source)}
    else:
        raise DataError(f"input {str(source)!r} is neither a case folder nor a .nii/.nii.gz file")
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


def build_segment(*, modality: str = "", overlap: Fraction = 0.5) -> Callable[[Any, Path, Path], list[Path]]:
    """``medical.segment``: ``<destination>/<case>_seg.nii.gz`` with the input's affine and shape
    (softmax classes are written as the data's ``mask_labels``)."""

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        data = model.spec.data
        inputs = model_inputs(data)
        encoder, head = model.encoder.eval(), model.head.eval()
        case, image, present, affine = read_case(source, inputs, modality)
        with torch.no_grad():
            logits = sliding_window_segment(encoder, head, image, present, overlap=overlap,
                                            modalities=inputs)
        seg = labels_from_logits(logits, head.activation, data.task.get("mask_labels"))
        return [write_volume(seg, affine, Path(destination) / f"{case}_seg.nii.gz", dtype=np.int16)]

    return run


def build_reconstruct(*, missing: list[str] | None = None, modality: str = "",
                      overlap: Fraction = 0.5, png: bool = False) -> Callable[[Any, Path, Path], list[Path]]:
    """``medical.reconstruct``: write ``<case>_<modality>.nii.gz`` for each missing modality
    (by default every modality the input lacks), in z-scored units, with the input's affine;
    with ``png``, also ``<case>_reconstruction.png``: the middle axial slice of every input and
    reconstructed volume."""

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        encoder, objective = model.encoder.eval(), getattr(model, "objective", None)
        if objective is None or not hasattr(objective, "reconstruct"):
            raise ConfigError("medical.reconstruct needs a pretrained export that holds the "
                              "medical.multimodal_mae objective (its decoder)")
        inputs = model_inputs(model.spec.data)
        for name in missing or ():
            if name not in inputs:
                raise ConfigError(f"unknown modality {name!r} in predict.params.missing; known: {list(inputs)}")
        objective.eval()
        case, image, present, affine = read_case(source, inputs, modality)
        wanted = list(missing) if missing else [m for m, p in zip(inputs, present[0]) if not p]
        if not wanted:
            raise DataError(f"case {case!r} ({str(source)!r}) has every modality; pass "
                            "predict.params.missing to choose what to reconstruct")

        def predict(window: torch.Tensor) -> torch.Tensor:
            batch = {"image": window, "present": present.expand(window.shape[0], -1),
                     "modalities": list(inputs)}
            out = objective.reconstruct(encoder, batch, missing=wanted)
            return torch.stack([out[m] for m in wanted], 1)

        with torch.no_grad():
            volumes = sliding_window_inference(image, (encoder.img_size,) * 3, 2, predict, overlap=overlap,
                                               mode="gaussian")
        written = [write_volume(volumes[0, i].numpy().astype(np.float32), affine,
                                Path(destination) / f"{case}_{name}.nii.gz")
                   for i, name in enumerate(wanted)]
        if png:
            shown = {f"input {m}": image[0, i].numpy() for i, m in enumerate(inputs) if present[0, i]}
            shown.update({f"reconstructed {m}": volumes[0, i].numpy() for i, m in enumerate(wanted)})
            written.append(slices_png(shown, Path(destination) / f"{case}_reconstruction.png"))
        return written

    return run


def slices_png(volumes: dict[str, np.ndarray], path: Path) -> Path:
    """Middle axial slice of each volume side by side, written atomically."""
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
