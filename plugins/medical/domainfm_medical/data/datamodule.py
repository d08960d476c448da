"""Multimodal brain-MRI cases: discovery, validated loading, MONAI transforms and the datamodule.

A case has any subset of the configured modalities (NIfTI files), optionally a segmentation
mask and a case-level label. A missing modality is carried as absent: ``batch["present"]`` is a
``(B, M)`` boolean mask and the encoder never sees tokens of an absent channel (its voxels are
zero only so that tensors stack). Deterministic preprocessing (load, orientation, spacing,
z-score over non-zero voxels, target conversion) is cached on disk by MONAI's
``PersistentDataset``, so RAM stays bounded however many cases there are.

Batches::

    image    (B, M, X, Y, Z) float   z-scored modalities in ``modalities`` order
    present  (B, M) bool             which modalities the case really has
    target   segmentation: (B, 3, X, Y, Z) TC/WT/ET (``seg_format="brats"``) or (B, 1, X, Y, Z)
             class indices (``"classes"``); classification: (B,) labels
    case     list[str]
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from monai import transforms as mt
from monai.data import PersistentDataset
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import json_hashing, worker_init_fn
from torch.utils.data import DataLoader

from domainfm.errors import DomainfmError
from domainfm_medical.io import BadCaseError, is_nifti, read_volume

log = logging.getLogger(__name__)

MODALITIES = ("t1", "t1ce", "t2", "flair")
BRATS_LABELS = (0, 1, 2, 4)
MASK_NAMES = ("seg", "mask", "label", "labels")


# --------------------------------------------------------------------------- discovery


def _stem(path: Path) -> str:
    name = path.name.lower()
    return name[:-7] if name.endswith(".nii.gz") else name[:-4]


def discover_cases(source: str | Path, modalities: Sequence[str] = MODALITIES) -> list[dict[str, Any]]:
    """Cases from a folder (one sub-folder per case) or a CSV/JSON manifest.

    A manifest has a ``case`` column/key, one column per modality, optional ``mask`` and
    ``label``; relative paths are relative to the manifest. In a folder, files are matched by
    name: ``t1.nii.gz`` or ``BraTS_0001_t1.nii.gz`` for modality ``t1``, ``seg``/``mask`` for the
    mask; a ``manifest.csv``/``manifest.json`` inside the folder takes precedence, and an
    optional ``labels.csv`` (case,label) gives labels.
    """
    source = Path(source)
    if source.is_dir():
        for name in ("manifest.csv", "manifest.json"):
            if (source / name).is_file():
                return discover_cases(source / name, modalities)
        return _cases_from_folder(source, modalities)
    if not source.is_file():
        raise DomainfmError(f"data source {str(source)!r} does not exist; expected a folder of cases "
                            "or a .csv/.json manifest")
    if source.suffix == ".csv":
        rows = pd.read_csv(source, comment="#", dtype=str, keep_default_na=False).to_dict("records")
    elif source.suffix == ".json":
        rows = json.loads(source.read_text())
        if isinstance(rows, dict):
            rows = rows.get("cases", rows.get("training"))
        if not isinstance(rows, list):
            raise DomainfmError(f"manifest {str(source)!r} must be a list of cases (or {{'cases': [...]}})")
    else:
        raise DomainfmError(f"manifest {str(source)!r} must be .csv or .json")
    cases = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("case"):
            raise DomainfmError(f"manifest {str(source)!r}, row {i}: missing the 'case' field")
        case = {"case": str(row["case"])}
        for key in (*modalities, "mask"):
            value = row.get(key) or None
            case[key] = None if value is None else str(source.parent / value)
        label = row.get("label")
        case["label"] = _label(label, case["case"], source)
        cases.append(case)
    return cases


def _label(value: Any, case: str, where: Path) -> int:
    if value is None or value == "":
        return -1
    try:
        return int(float(value))
    except ValueError:
        raise DomainfmError(f"case {case!r} in {str(where)!r}: label {value!r} is not an integer") from None


def case_from_folder(folder: Path, modalities: Sequence[str], label: int = -1) -> dict[str, Any]:
    """One case from its folder, files matched by modality name (see :func:`discover_cases`)."""
    folder = Path(folder)
    files = [p for p in sorted(folder.iterdir()) if is_nifti(p)]
    case: dict[str, Any] = {"case": folder.name, "label": label}
    for key, names in [(m, (m,)) for m in modalities] + [("mask", MASK_NAMES)]:
        hits = [p for p in files if any(_stem(p) == n or _stem(p).endswith("_" + n) for n in names)]
        if len(hits) > 1:
            raise DomainfmError(f"case {folder.name!r}: several files match {key!r}: "
                                f"{', '.join(p.name for p in hits)}")
        case[key] = str(hits[0]) if hits else None
    return case


def _cases_from_folder(root: Path, modalities: Sequence[str]) -> list[dict[str, Any]]:
    labels: dict[str, int] = {}
    if (root / "labels.csv").is_file():
        table = pd.read_csv(root / "labels.csv", dtype=str)
        labels = {r["case"]: _label(r["label"], r["case"], root / "labels.csv") for r in table.to_dict("records")}
    cases = [case_from_folder(folder, modalities, labels.get(folder.name, -1))
             for folder in sorted(p for p in root.iterdir() if p.is_dir())]
    if not cases:
        raise DomainfmError(f"data folder {str(root)!r} holds no case sub-folders and no manifest")
    return cases


# --------------------------------------------------------------------------- transforms


class LoadCased(mt.Transform):
    """Read a case's modalities and mask into ``image`` (M, X, Y, Z), ``present`` and ``seg``.

    Validates everything a run would otherwise trip over later, raising :class:`BadCaseError`
    naming the case and the file: unreadable files, no modality at all, shapes or affines that
    differ between modalities, NaNs, mask labels outside ``mask_labels``.
    """

    def __init__(self, modalities: Sequence[str], mask_labels: Sequence[int] | None,
                 require_mask: bool = False, require_label: bool = False) -> None:
        self.modalities = tuple(modalities)
        self.require_label = require_label
        self.mask_labels = None if mask_labels is None else sorted(set(mask_labels))
        self.require_mask = require_mask

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        case = str(data["case"])
        paths = {m: data.get(m) for m in self.modalities}
        if not any(paths.values()):
            raise BadCaseError(case, None, f"no modality files; expected at least one of "
                               f"{', '.join(self.modalities)}")
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
            volumes.append(volume)
        if self.require_label and int(data.get("label", -1)) < 0:
            raise BadCaseError(case, None, "no label, but the task is classification")
        present = [v is not None for v in volumes]
        image = np.stack([v if v is not None else np.zeros(ref_shape, np.float32) for v in volumes])
        out = {k: v for k, v in data.items() if k not in self.modalities and k != "mask"}
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

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
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

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
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


class Finalized(mt.Transform):
    """Zero the voxels of absent modalities (after intensity jitter) and set ``batch['target']``."""

    def __init__(self, task: str) -> None:
        self.task = task

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
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
                     augment: bool = True, modality_dropout: float = 0.0) -> mt.Compose:
    """The reference preprocessing (RAS, 1 mm, crop/pad, z-score on non-zero voxels per
    modality) then, for training, random crop, flips on 3 axes and intensity scale/shift of 0.1."""
    keys = ["image", "seg"]
    steps: list[Any] = [
        LoadCased(modalities, mask_labels, require_mask=task == "segmentation",
                  require_label=task == "classification"),
        mt.Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")),
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


def _bad_case(exc: BaseException) -> BadCaseError | None:
    """MONAI wraps transform errors in RuntimeError; find ours in the chain."""
    while exc is not None:
        if isinstance(exc, BadCaseError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


# --------------------------------------------------------------------------- datamodule

_SCRATCH: tempfile.TemporaryDirectory | None = None


def _scratch(name: str) -> Path:
    """A folder inside this process's temporary directory (removed at exit): generated data and
    the preprocessing cache are shared by every datamodule of the process instead of redone."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="domainfm-medical-")
    path = Path(_SCRATCH.name) / name
    path.mkdir(exist_ok=True)
    return path



class BrainMRIDataModule(pl.LightningDataModule):
    """Train/val split of multimodal MRI cases, reproducible from ``seed``.

    Every split is a map-style dataset, so under DDP Lightning's ``DistributedSampler`` gives each
    rank a disjoint share of an epoch (padded by repeating cases when the count does not divide).
    Cases are validated when the datamodule is set up: by default one bad case stops the run
    with an error naming it; ``skip_bad_cases=True`` logs it and leaves it out.
    """

    def __init__(self, *, source: str | Path, modalities: Sequence[str] = MODALITIES,
                 roi_size: int | Sequence[int] = 32, pixdim: float | None = 1.0,
                 seg_format: Literal["brats", "classes"] = "brats",
                 mask_labels: Sequence[int] | None = BRATS_LABELS,
                 task: Literal["segmentation", "classification", "none"] = "segmentation",
                 batch_size: int = 2, num_workers: int = 0, val_fraction: float = 0.25,
                 train_cases: int | None = None, seed: int = 0, augment: bool = True,
                 modality_dropout: float = 0.0, skip_bad_cases: bool = False,
                 cache_dir: str | Path | None = None) -> None:
        super().__init__()
        self.source = Path(source)
        self.modalities = tuple(modalities)
        if len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            raise DomainfmError(f"modalities must be distinct names, got {list(modalities)}")
        self.roi_size = (roi_size,) * 3 if isinstance(roi_size, int) else tuple(roi_size)
        if seg_format == "brats" and mask_labels is not None and not set(mask_labels) <= set(BRATS_LABELS):
            raise DomainfmError(f"seg_format 'brats' expects mask_labels within {list(BRATS_LABELS)}, "
                                f"got {list(mask_labels)}; use seg_format 'classes' for other labels")
        self.options = dict(modalities=self.modalities, roi_size=self.roi_size, pixdim=pixdim,
                            seg_format=seg_format, mask_labels=mask_labels, task=task)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.train_cases, self.seed = val_fraction, train_cases, seed
        self.augment, self.modality_dropout = augment, modality_dropout
        self.skip_bad_cases = skip_bad_cases
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _scratch("cache")
        self.datasets: dict[str, PersistentDataset] = {}
        self.skipped: list[str] = []

    @property
    def num_seg_classes(self) -> int:
        labels = self.options["mask_labels"] or BRATS_LABELS
        return 3 if self.options["seg_format"] == "brats" else len(labels)

    def split(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(train, val) cases: a seeded shuffle; a non-zero ``val_fraction`` keeps at least one
        case in each split when there are two or more."""
        cases = discover_cases(self.source, self.modalities)
        order = np.random.default_rng(self.seed).permutation(len(cases))
        n_val = round(len(cases) * self.val_fraction)
        if self.val_fraction > 0 and len(cases) > 1:
            n_val = min(max(1, n_val), len(cases) - 1)
        val = [cases[i] for i in order[:n_val]]
        train = [cases[i] for i in order[n_val:]]
        if self.train_cases is not None:
            train = train[: self.train_cases]
        return train, val

    def _dataset(self, cases: list[dict[str, Any]], train: bool) -> PersistentDataset:
        transform = build_transforms(**self.options, train=train, augment=self.augment,
                                     modality_dropout=self.modality_dropout if train else 0.0)
        good = []
        for case in cases:
            try:
                PersistentDataset([case], transform, self.cache_dir, hash_transform=json_hashing)[0]
            except Exception as exc:
                bad = _bad_case(exc)
                if bad is None:
                    raise
                if not self.skip_bad_cases:
                    raise bad from None
                log.warning("skipping bad case: %s", bad)
                self.skipped.append(str(bad))
                continue
            good.append(case)
        dataset = PersistentDataset(good, transform, self.cache_dir, hash_transform=json_hashing)
        transform.set_random_state(seed=self.seed)  # after: the constructor draws from it
        return dataset

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        train, val = self.split()
        self.datasets["train"] = self._dataset(train, train=True)
        self.datasets["val"] = self._dataset(val, train=False)
        if len(self.datasets["train"]) == 0:
            raise DomainfmError(f"no usable training cases in {str(self.source)!r}")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, worker_init_fn=worker_init_fn,
                          generator=generator, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)


def brain_mri(*, source: str = "", modalities: list[str] | None = None, roi_size: int = 128,
              pixdim: float | None = 1.0, seg_format: Literal["brats", "classes"] = "brats",
              mask_labels: list[int] | None = None,
              task: Literal["segmentation", "classification", "none"] = "segmentation",
              batch_size: int = 1, num_workers: int = 2, val_fraction: float = 0.2,
              train_cases: int | None = None, seed: int = 0, augment: bool = True,
              modality_dropout: float = 0.0, skip_bad_cases: bool = False,
              cache_dir: str | None = None, synthetic_cases: int = 16) -> BrainMRIDataModule:
    """Your own NIfTI cases: ``source`` is a folder of case folders or a CSV/JSON manifest.

    With ``source`` empty, ``synthetic_cases`` embedded synthetic brains are generated instead
    (at ``roi_size``), so a config can be tried before pointing it at real data.
    """
    options = dict(modalities=modalities or MODALITIES, roi_size=roi_size, pixdim=pixdim,
                   seg_format=seg_format, mask_labels=mask_labels if mask_labels is not None else BRATS_LABELS,
                   task=task, batch_size=batch_size, num_workers=num_workers, val_fraction=val_fraction,
                   train_cases=train_cases, seed=seed, augment=augment, modality_dropout=modality_dropout,
                   skip_bad_cases=skip_bad_cases, cache_dir=cache_dir)
    if not source:
        return SyntheticBrainsDataModule(root=None, num_cases=synthetic_cases, size=roi_size, data_seed=0,
                                         **options)
    return BrainMRIDataModule(source=source, **options)


class SyntheticBrainsDataModule(BrainMRIDataModule):
    """The embedded dataset, generated from a fixed seed into ``root`` (a temporary folder by default)."""

    def __init__(self, *, root: str | Path | None, num_cases: int, size: int, data_seed: int,
                 **kwargs: Any) -> None:
        if root is None:
            root = _scratch(f"synthetic-{num_cases}-{size}-{data_seed}")
        self.generator_params = dict(num_cases=num_cases, size=size, seed=data_seed)
        super().__init__(source=Path(root) / "manifest.csv", **kwargs)

    def prepare(self) -> Path:
        from domainfm_medical.synthetic import generate

        return generate(self.source.parent, **self.generator_params)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()  # every rank writes the same files from the same seed into its own folder
        super().setup(stage)


def synthetic_brains(*, root: str | None = None, num_cases: int = 16, size: int = 32,
                     data_seed: int = 0, roi_size: int = 32, batch_size: int = 2,
                     task: Literal["segmentation", "classification", "none"] = "segmentation",
                     val_fraction: float = 0.25, train_cases: int | None = None, seed: int = 0,
                     augment: bool = True, modality_dropout: float = 0.0,
                     num_workers: int = 0, cache_dir: str | None = None) -> SyntheticBrainsDataModule:
    """Small synthetic brains (4 modalities, BraTS-style tumour masks, grade label)."""
    return SyntheticBrainsDataModule(
        root=root, num_cases=num_cases, size=size, data_seed=data_seed, roi_size=roi_size,
        batch_size=batch_size, task=task, val_fraction=val_fraction, train_cases=train_cases,
        seed=seed, augment=augment, modality_dropout=modality_dropout, num_workers=num_workers,
        cache_dir=cache_dir)


def synthetic_grades(*, root: str | None = None, num_cases: int = 16, size: int = 32,
                     data_seed: int = 0, roi_size: int = 32, batch_size: int = 2,
                     val_fraction: float = 0.25, train_cases: int | None = None, seed: int = 0,
                     augment: bool = True, modality_dropout: float = 0.0,
                     num_workers: int = 0, cache_dir: str | None = None) -> SyntheticBrainsDataModule:
    """The synthetic brains with ``target`` = tumour grade (1 when the tumour enhances)."""
    return synthetic_brains(root=root, num_cases=num_cases, size=size, data_seed=data_seed,
                            roi_size=roi_size, batch_size=batch_size, task="classification",
                            val_fraction=val_fraction, train_cases=train_cases, seed=seed,
                            augment=augment, modality_dropout=modality_dropout,
                            num_workers=num_workers, cache_dir=cache_dir)
