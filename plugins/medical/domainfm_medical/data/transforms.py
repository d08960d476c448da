"""MONAI transforms of a case: validated loading, the reference preprocessing, augmentation.

:class:`LoadCased` reads and checks a case's files; :func:`build_transforms` chains it with
MONAI's orientation, spacing, z-score, crop/pad and augmentations. MONAI wraps any transform's
error in ``RuntimeError("applying transform ...")``; :func:`case_error` turns such a chain back
into one :class:`~domainfm_medical.io.BadCaseError` line naming the case and its file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai import transforms as mt
from monai.data.meta_tensor import MetaTensor

from domainfm_medical.data.cases import BRATS_LABELS, FOLDER, UNMATCHED
from domainfm_medical.io import BadCaseError, read_volume

ORIENTATION = "RAS"
NORMALIZATION = {"method": "zscore_nonzero", "channel_wise": True,
                 "description": "each modality of each case z-scored over its non-zero voxels "
                                "(no dataset statistics: nothing is fitted)"}


class LoadCased(mt.Transform):
    """Read a case's modalities and mask into ``image`` (M, X, Y, Z), ``present`` and ``seg``.

    Validates everything a run would otherwise trip over later, raising :class:`BadCaseError`
    naming the case and the file: unreadable files, no modality at all, a constant (e.g. all
    zero) modality, shapes or affines that differ between modalities, NaNs, mask labels outside
    ``mask_labels``.
    """

    def __init__(self, modalities: Sequence[str], mask_labels: Sequence[int] | None,
                 require_mask: bool = False, require_label: bool = False) -> None:
        self.modalities = tuple(modalities)
        self.require_label = require_label
        self.mask_labels = None if mask_labels is None else sorted(set(mask_labels))
        self.require_mask = require_mask

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        case = str(data["case"])
        paths = {m: data.get(m) for m in self.modalities}
        if not any(paths.values()):
            others = data.get(UNMATCHED) or []
            found = f" (its NIfTI files {', '.join(others)} name none of them)" if others else ""
            raise BadCaseError(case, data.get(FOLDER), f"no modality files; expected at least one of "
                               f"{', '.join(self.modalities)}{found}", kind="folder")
        ref_shape = ref_affine = ref_path = None
        volumes = []
        for m in self.modalities:
            if paths[m] is None:
                volumes.append(None)
                continue
            volume, affine = read_volume(paths[m], case)
            if ref_shape is None:
                ref_shape, ref_affine, ref_path = volume.shape, affine, paths[m]
            elif volume.shape != ref_shape:
                raise BadCaseError(case, paths[m], f"shape {volume.shape} differs from {ref_shape} "
                                   f"of {Path(ref_path).name}; modalities must be co-registered")
            elif not np.allclose(affine, ref_affine, atol=1e-3):
                raise BadCaseError(case, paths[m], f"affine differs from that of {Path(ref_path).name}; "
                                   "modalities must be co-registered")
            if volume.max() == volume.min():
                raise BadCaseError(case, paths[m], f"the {m} volume is constant (every voxel "
                                   f"{float(volume.flat[0]):g}): no signal to z-score")
            volumes.append(volume)
        if self.require_label and int(data.get("label", -1)) < 0:
            raise BadCaseError(case, None, "no label, but the task is classification")
        present = [v is not None for v in volumes]
        image = np.stack([v if v is not None else np.zeros(ref_shape, np.float32) for v in volumes])
        out = {k: v for k, v in data.items() if k not in (*self.modalities, "mask", FOLDER, UNMATCHED)}
        out["image"] = MetaTensor(torch.from_numpy(image), affine=torch.as_tensor(ref_affine))
        out["present"] = torch.tensor(present)
        mask_path = data.get("mask")
        if mask_path is None and self.require_mask:
            raise BadCaseError(case, None, "no segmentation mask, but the task is segmentation")
        if mask_path is not None:
            mask, affine = read_volume(mask_path, case)
            if mask.shape != ref_shape:
                raise BadCaseError(case, mask_path, f"mask shape {mask.shape} differs from image shape {ref_shape}")
            if not np.array_equal(mask, np.round(mask)):
                raise BadCaseError(case, mask_path, "mask holds non-integer values")
            found = sorted(int(v) for v in np.unique(mask))
            if self.mask_labels is not None and (extra := [v for v in found if v not in self.mask_labels]):
                raise BadCaseError(case, mask_path, f"mask labels {extra} are not in the configured "
                                   f"mask_labels {self.mask_labels}")
            out["seg"] = MetaTensor(torch.from_numpy(mask[None]), affine=torch.as_tensor(affine))
        return out


class IndexLabelsd(mt.MapTransform):
    """Map mask labels (e.g. 0, 1, 2, 4) to class indices 0..K-1 for softmax segmentation."""

    def __init__(self, keys: str, labels: Sequence[int]) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.labels = sorted(labels)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            lut = torch.zeros(max(self.labels) + 1, dtype=torch.long)
            lut[torch.tensor(self.labels)] = torch.arange(len(self.labels))
            d[key] = lut[torch.as_tensor(d[key]).long()]
        return d


class RandDropModalityd(mt.RandomizableTransform):
    """Mark each present modality absent with probability ``prob``, always keeping one.

    Fine-tuning with it teaches a model to serve any subset of modalities.
    """

    def __init__(self, prob: float) -> None:
        super().__init__(prob=1.0)
        self.drop = prob

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        present = torch.as_tensor(d["present"]).clone()
        idx = torch.nonzero(present).flatten().tolist()
        if self.drop > 0 and len(idx) > 1:
            keep = self.R.choice(idx)
            for i in idx:
                if i != keep and self.R.rand() < self.drop:
                    present[i] = False
        d["present"] = present
        return d


class KeepPresent:
    """Mark every modality outside ``keep`` absent, as if the case lacked it (at least one of
    ``keep`` must remain): scores a model with only some of its inputs.

    Deliberately not a MONAI ``Transform``: ``PersistentDataset`` caches up to the first step that
    is not one, so the cached preprocessing is shared by every choice of ``keep``.
    """

    def __init__(self, modalities: Sequence[str], keep: Sequence[str]) -> None:
        self.modalities, self.keep = tuple(modalities), tuple(keep)
        self.mask = torch.tensor([m in self.keep for m in self.modalities])

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        present = torch.as_tensor(d["present"]).bool()
        if not bool((present & self.mask).any()):
            has = [m for m, p in zip(self.modalities, present.tolist()) if p]
            raise BadCaseError(str(d.get("case", "?")), None, f"has none of the present_modalities "
                               f"{list(self.keep)} (it has {', '.join(has)})")
        d["present"] = present & self.mask
        return d


class Finalized(mt.Transform):
    """Zero the voxels of absent modalities (after intensity jitter) and set ``batch['target']``."""

    def __init__(self, task: str) -> None:
        self.task = task

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        image = torch.as_tensor(d["image"]).as_subclass(torch.Tensor).float()
        present = torch.as_tensor(d["present"]).bool()
        d["image"] = image * present[:, None, None, None].to(image.dtype)
        d["present"] = present
        if "seg" in d:
            d["seg"] = torch.as_tensor(d["seg"]).as_subclass(torch.Tensor)
        d["label"] = int(d.get("label", -1))
        if self.task == "segmentation":
            d["target"] = d["seg"]
        elif self.task == "classification":
            d["target"] = torch.tensor(d["label"])
        return d


def build_transforms(*, modalities: Sequence[str], roi_size: Sequence[int], pixdim: float | None,
                     seg_format: str, mask_labels: Sequence[int] | None, task: str, train: bool,
                     augment: bool = True, modality_dropout: float = 0.0,
                     present_modalities: Sequence[str] | None = None) -> mt.Compose:
    """The reference preprocessing (RAS, 1 mm, crop/pad, z-score on non-zero voxels per
    modality) then, for training, random crop, flips on 3 axes and intensity scale/shift of 0.1.
    ``present_modalities`` keeps only those present (:class:`KeepPresent`)."""
    keys = ["image", "seg"]
    steps: list[Any] = [
        LoadCased(modalities, mask_labels, require_mask=task == "segmentation",
                  require_label=task == "classification"),
        mt.Orientationd(keys, axcodes=ORIENTATION, labels=(("L", "R"), ("P", "A"), ("I", "S")),
                        allow_missing_keys=True),
    ]
    if pixdim:
        steps.append(mt.Spacingd(keys, pixdim=(pixdim,) * 3, mode=("bilinear", "nearest"),
                                 allow_missing_keys=True))
    steps.append(mt.NormalizeIntensityd("image", nonzero=True, channel_wise=True))
    if seg_format == "brats":
        steps.append(mt.ConvertToMultiChannelBasedOnBratsClassesd("seg", allow_missing_keys=True))
    else:
        steps.append(IndexLabelsd("seg", mask_labels or BRATS_LABELS))
    steps.append(mt.SpatialPadd(keys, spatial_size=roi_size, allow_missing_keys=True))
    if present_modalities is not None:
        steps.append(KeepPresent(modalities, present_modalities))
    if train and augment:
        steps += [
            mt.RandSpatialCropd(keys, roi_size=roi_size, random_size=False, allow_missing_keys=True),
            *(mt.RandFlipd(keys, prob=0.5, spatial_axis=axis, allow_missing_keys=True) for axis in range(3)),
            mt.RandScaleIntensityd("image", factors=0.1, prob=1.0),
            mt.RandShiftIntensityd("image", offsets=0.1, prob=1.0),
        ]
        if modality_dropout > 0:
            steps.append(RandDropModalityd(modality_dropout))
    else:
        steps.append(mt.CenterSpatialCropd(keys, roi_size=roi_size, allow_missing_keys=True))
    steps.append(Finalized(task))
    return mt.Compose(steps)


def case_error(exc: BaseException, case: Mapping[str, Any], modalities: Sequence[str]) -> BadCaseError:
    """One line for whatever preprocessing ``case`` raised, naming the case and a file.

    Our own :class:`BadCaseError` is found in MONAI's ``RuntimeError`` chain; any other error
    (a singular affine, say) is reported with its innermost message and the case's first file.
    """
    inner: BaseException | None = exc
    last = exc
    while inner is not None:
        if isinstance(inner, BadCaseError):
            return inner
        last = inner
        inner = inner.__cause__ or inner.__context__
    first = next((case[m] for m in (*modalities, "mask") if case.get(m)), None)
    return BadCaseError(str(case.get("case", "?")), first,
                        f"preprocessing failed ({type(last).__name__}: {last})")
