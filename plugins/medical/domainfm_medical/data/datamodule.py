"""The datamodule of multimodal brain-MRI cases: seeded splits, validated cases, cached transforms.

A case has any subset of the configured modalities (NIfTI files), optionally a segmentation
mask and a case-level label. A missing modality is carried as absent: ``batch["present"]`` is a
``(B, M)`` boolean mask and the encoder never sees tokens of an absent channel (its voxels are
zero only so that tensors stack). Deterministic preprocessing (load, orientation, spacing,
z-score over non-zero voxels, target conversion) is cached on disk by MONAI's
``PersistentDataset``, so RAM stays bounded however many cases there are; the cache has one
sub-folder per set of preprocessing options, because MONAI keys it by the case's files and the
transforms' class names only (a changed ``roi_size`` would otherwise read stale volumes).
``present_modalities`` keeps only some modalities present (the others carried as absent), so a
model can be scored with each subset of its inputs; it is applied after the cached steps.

Batches::

    image    (B, M, X, Y, Z) float   z-scored modalities in ``modalities`` order
    present  (B, M) bool             which modalities the case really has
    target   segmentation: (B, 3, X, Y, Z) TC/WT/ET (``seg_format="brats"``) or (B, 1, X, Y, Z)
             class indices (``"classes"``); classification: (B,) labels
    case     list[str]
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from monai.data import PersistentDataset
from monai.data.utils import json_hashing, worker_init_fn
from torch.utils.data import DataLoader

from domainfm.errors import DataError
from domainfm.records import Fraction, NonNegativeInt, PositiveFloat, PositiveInt
from domainfm.spec import DataSpec
from domainfm_medical.data.cases import BRATS_LABELS, MODALITIES, discover_cases
from domainfm_medical.data.transforms import NORMALIZATION, ORIENTATION, build_transforms, case_error

log = logging.getLogger(__name__)

Task = Literal["segmentation", "classification", "none"]
SPLITS = ("train", "val", "test")

_SCRATCH: tempfile.TemporaryDirectory | None = None


def scratch(name: str) -> Path:
    """A folder inside this process's temporary directory (removed at exit): generated data and
    the preprocessing cache are shared by every datamodule of the process instead of redone."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="domainfm-medical-")
    path = Path(_SCRATCH.name) / name
    path.mkdir(exist_ok=True)
    return path


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation, test) case counts: a non-zero fraction keeps at least one case in its
    split while training keeps at least one (validation first when cases are few)."""
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if val_fraction > 0 and n > 1:
        n_val = min(max(1, n_val), n - 1)
    if test_fraction > 0 and n - n_val > 1:
        n_test = max(1, n_test)
    return n_val, max(0, min(n_test, n - n_val - 1))


class BrainMRIDataModule(pl.LightningDataModule):
    """Train/validation/test splits of multimodal MRI cases, disjoint and reproducible from ``seed``.

    Every split is a map-style dataset, so under DDP Lightning's ``DistributedSampler`` gives each
    rank a disjoint share of an epoch (padded by repeating cases when the count does not divide).
    Every case is read and validated in :meth:`setup`, before a run writes anything: by default
    one bad case stops the run with one line naming it and its file; ``skip_bad_cases=True`` logs
    it and leaves it out.
    """

    def __init__(self, *, source: str | Path, modalities: Sequence[str] = MODALITIES,
                 roi_size: int | Sequence[int] = 32, pixdim: float | None = 1.0,
                 seg_format: Literal["brats", "classes"] = "brats",
                 mask_labels: Sequence[int] | None = BRATS_LABELS, task: Task = "segmentation",
                 batch_size: int = 2, num_workers: int = 0, val_fraction: float = 0.25,
                 test_fraction: float = 0.2, train_cases: int | None = None, seed: int = 0,
                 augment: bool = True, modality_dropout: float = 0.0, skip_bad_cases: bool = False,
                 cache_dir: str | Path | None = None,
                 present_modalities: Sequence[str] | None = None) -> None:
        super().__init__()
        self.source = Path(source)
        self.modalities = tuple(modalities)
        if len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            raise DataError(f"modalities must be distinct names, got {list(modalities)}")
        self.roi_size = (roi_size,) * 3 if isinstance(roi_size, int) else tuple(roi_size)
        if seg_format == "brats" and mask_labels is not None and not set(mask_labels) <= set(BRATS_LABELS):
            raise DataError(f"seg_format 'brats' expects mask_labels within {list(BRATS_LABELS)}, "
                            f"got {list(mask_labels)}; use seg_format 'classes' for other labels")
        if present_modalities is not None and (not present_modalities
                                               or not set(present_modalities) <= set(self.modalities)):
            raise DataError(f"present_modalities {list(present_modalities)} must be a non-empty "
                            f"subset of the modalities {list(self.modalities)}")
        self.present_modalities = None if present_modalities is None else tuple(present_modalities)
        if val_fraction + test_fraction >= 1:
            raise DataError(f"val_fraction {val_fraction} + test_fraction {test_fraction} leave no "
                            "training cases; their sum must be below 1")
        self.options = dict(modalities=self.modalities, roi_size=self.roi_size, pixdim=pixdim,
                            seg_format=seg_format, mask_labels=mask_labels, task=task)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.train_cases, self.seed = train_cases, seed
        self.augment, self.modality_dropout = augment, modality_dropout
        self.skip_bad_cases = skip_bad_cases
        digest = hashlib.sha256(json.dumps(self.options, sort_keys=True, default=list).encode()).hexdigest()
        self.cache_dir = (Path(cache_dir) if cache_dir is not None else scratch("cache")) / digest[:16]
        self.datasets: dict[str, PersistentDataset] = {}
        self.skipped: list[str] = []

    @property
    def num_classes(self) -> int | None:
        """Segmentation channels (3 for BraTS TC/WT/ET, else one per mask label) or case classes."""
        task = self.options["task"]
        if task == "segmentation":
            labels = self.options["mask_labels"] or BRATS_LABELS
            return 3 if self.options["seg_format"] == "brats" else len(labels)
        if task == "classification" and self.datasets:
            labels = [int(c["label"]) for d in self.datasets.values() for c in d.data]
            return max(2, max(labels) + 1)
        return None

    def split(self, cases: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Disjoint train/val/test cases from one seeded shuffle: validation first, then test,
        the rest training (``train_cases`` keeps only the first of those)."""
        order = np.random.default_rng(self.seed).permutation(len(cases))
        n_val, n_test = split_counts(len(cases), self.val_fraction, self.test_fraction)
        picked = [cases[i] for i in order]
        train = picked[n_val + n_test:]
        if self.train_cases is not None:
            train = train[: self.train_cases]
        return {"train": train, "val": picked[:n_val], "test": picked[n_val: n_val + n_test]}

    def _dataset(self, cases: list[dict[str, Any]], train: bool) -> PersistentDataset:
        transform = build_transforms(**self.options, train=train, augment=self.augment,
                                     modality_dropout=self.modality_dropout if train else 0.0,
                                     present_modalities=self.present_modalities)
        good = []
        for case in cases:
            try:
                PersistentDataset([case], transform, self.cache_dir, hash_transform=json_hashing)[0]
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the case
                bad = case_error(exc, case, self.modalities)
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
        """Read, preprocess and validate every case of every split (idempotent)."""
        if self.datasets:
            return
        splits = self.split(discover_cases(self.source, self.modalities))
        datasets = {name: self._dataset(cases, train=name == "train") for name, cases in splits.items()}
        if len(datasets["train"]) == 0:
            raise DataError(f"no usable training cases in {str(self.source)!r}")
        if stage == "test" and len(datasets["test"]) == 0:
            raise DataError(f"{str(self.source)!r} has no test cases (test_fraction "
                            f"{self.test_fraction} of {sum(map(len, splits.values()))} cases)")
        self.datasets = datasets

    def split_keys(self, split: str) -> list[str]:
        """Case names of ``split`` ("train", "val" or "test")."""
        return [str(c["case"]) for c in self.datasets[split].data]

    def data_spec(self) -> DataSpec:
        """Modalities, classes, the per-case z-score, and what heads, metrics and predictors need."""
        if not self.datasets:
            raise DataError("data_spec() needs setup() first")
        o = self.options
        task: dict[str, Any] = {"target": o["task"], "roi_size": list(self.roi_size),
                                "pixdim": o["pixdim"], "spacing": o["pixdim"] or 1.0,
                                "orientation": ORIENTATION, "seg_format": o["seg_format"],
                                "mask_labels": sorted(o["mask_labels"] or BRATS_LABELS)}
        if o["task"] == "segmentation":
            task["activation"] = "sigmoid" if o["seg_format"] == "brats" else "softmax"
            regions = "BraTS TC/WT/ET" if o["seg_format"] == "brats" else f"mask labels {task['mask_labels']}"
            task["label_source"] = f"{regions} of the masks in {str(self.source)!r}"
        elif o["task"] == "classification":
            task["label_source"] = f"case labels in {str(self.source)!r}"
        return DataSpec(inputs=self.modalities, num_classes=self.num_classes,
                        normalization=dict(NORMALIZATION), task=task)

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
        if len(self.datasets["test"]) == 0:
            raise DataError(f"{str(self.source)!r} has no test cases (test_fraction {self.test_fraction})")
        return self._loader("test", shuffle=False)


class SyntheticBrainsDataModule(BrainMRIDataModule):
    """The embedded dataset, generated from a fixed seed into ``root`` (a temporary folder by default)."""

    def __init__(self, *, root: str | Path | None, num_cases: int, size: int, data_seed: int,
                 **kwargs: Any) -> None:
        if root is None:
            root = scratch(f"synthetic-{num_cases}-{size}-{data_seed}")
        self.generator_params = dict(num_cases=num_cases, size=size, seed=data_seed)
        super().__init__(source=Path(root) / "manifest.csv", **kwargs)

    def prepare(self) -> Path:
        from domainfm_medical.data.synthetic import generate

        return generate(self.source.parent, **self.generator_params)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()  # every rank writes the same files from the same seed into its own folder
        super().setup(stage)


def brain_mri(*, source: str = "", modalities: list[str] | None = None, roi_size: PositiveInt = 128,
              pixdim: PositiveFloat | None = 1.0, seg_format: Literal["brats", "classes"] = "brats",
              mask_labels: list[NonNegativeInt] | None = None, task: Task = "segmentation",
              batch_size: PositiveInt = 1, num_workers: NonNegativeInt = 2,
              val_fraction: Fraction = 0.2, test_fraction: Fraction = 0.2,
              train_cases: PositiveInt | None = None, seed: int = 0, augment: bool = True,
              modality_dropout: Fraction = 0.0, skip_bad_cases: bool = False,
              cache_dir: str | None = None, synthetic_cases: PositiveInt = 16,
              present_modalities: list[str] | None = None) -> BrainMRIDataModule:
    """Your own NIfTI cases: ``source`` is a folder of case folders or a CSV/JSON manifest.

    With ``source`` empty, ``synthetic_cases`` embedded synthetic brains are generated instead
    (at ``roi_size``), so a config can be tried before pointing it at real data.
    ``present_modalities`` keeps only those modalities present in every case (the others are
    carried as absent, as if the cases lacked them): evaluate a model with a subset of its inputs.
    """
    options = dict(modalities=modalities or MODALITIES, roi_size=roi_size, pixdim=pixdim,
                   seg_format=seg_format, mask_labels=mask_labels if mask_labels is not None else BRATS_LABELS,
                   task=task, batch_size=batch_size, num_workers=num_workers, val_fraction=val_fraction,
                   test_fraction=test_fraction, train_cases=train_cases, seed=seed, augment=augment,
                   modality_dropout=modality_dropout, skip_bad_cases=skip_bad_cases, cache_dir=cache_dir,
                   present_modalities=present_modalities)
    if not source:
        return SyntheticBrainsDataModule(root=None, num_cases=synthetic_cases, size=roi_size, data_seed=0,
                                         **options)
    return BrainMRIDataModule(source=source, **options)


def synthetic_brains(*, root: str | None = None, num_cases: PositiveInt = 16, size: PositiveInt = 32,
                     data_seed: int = 0, roi_size: PositiveInt = 32, batch_size: PositiveInt = 2,
                     task: Task = "segmentation", val_fraction: Fraction = 0.25,
                     test_fraction: Fraction = 0.2, train_cases: PositiveInt | None = None,
                     seed: int = 0, augment: bool = True, modality_dropout: Fraction = 0.0,
                     num_workers: NonNegativeInt = 0, cache_dir: str | None = None,
                     present_modalities: list[str] | None = None) -> SyntheticBrainsDataModule:
    """Small synthetic brains (4 modalities, BraTS-style tumour masks, grade label);
    ``present_modalities`` as in :func:`brain_mri`."""
    return SyntheticBrainsDataModule(
        root=root, num_cases=num_cases, size=size, data_seed=data_seed, roi_size=roi_size,
        batch_size=batch_size, task=task, val_fraction=val_fraction, test_fraction=test_fraction,
        train_cases=train_cases, seed=seed, augment=augment, modality_dropout=modality_dropout,
        num_workers=num_workers, cache_dir=cache_dir, present_modalities=present_modalities)


def synthetic_grades(*, root: str | None = None, num_cases: PositiveInt = 16, size: PositiveInt = 32,
                     data_seed: int = 0, roi_size: PositiveInt = 32, batch_size: PositiveInt = 2,
                     val_fraction: Fraction = 0.25, test_fraction: Fraction = 0.2,
                     train_cases: PositiveInt | None = None, seed: int = 0, augment: bool = True,
                     modality_dropout: Fraction = 0.0, num_workers: NonNegativeInt = 0,
                     cache_dir: str | None = None,
                     present_modalities: list[str] | None = None) -> SyntheticBrainsDataModule:
    """The synthetic brains with ``target`` = tumour grade (1 when the tumour enhances)."""
    return synthetic_brains(root=root, num_cases=num_cases, size=size, data_seed=data_seed,
                            roi_size=roi_size, batch_size=batch_size, task="classification",
                            val_fraction=val_fraction, test_fraction=test_fraction,
                            train_cases=train_cases, seed=seed, augment=augment,
                            modality_dropout=modality_dropout, num_workers=num_workers,
                            cache_dir=cache_dir, present_modalities=present_modalities)
