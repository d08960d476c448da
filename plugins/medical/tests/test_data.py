"""Case discovery, validated loading, transforms, bad input and DDP sharding."""

from __future__ import annotations

import gzip
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from domainfm.errors import DomainfmError
from domainfm_medical.data import BrainMRIDataModule, discover_cases
from domainfm_medical.io import BadCaseError, write_volume
from domainfm_medical.data.synthetic import AFFINE, write_case


def datamodule(source, **kw) -> BrainMRIDataModule:
    kw = {"roi_size": 32, "batch_size": 2, "val_fraction": 0.25, "augment": False, **kw}
    return BrainMRIDataModule(source=source, **kw)


def test_folder_discovery_matches_modalities_and_masks(cases: Path) -> None:
    found = {c["case"]: c for c in discover_cases(cases)}
    assert sorted(found) == ["case_0", "case_1", "case_2", "case_3"]
    assert found["case_0"]["flair"].endswith("case_0_flair.nii.gz")
    assert found["case_0"]["mask"].endswith("case_0_seg.nii.gz")
    assert found["case_3"]["t2"] is None and found["case_3"]["flair"] is None


def test_csv_and_json_manifests(cases: Path, tmp_path: Path) -> None:
    rows = [{"case": "a", "t1": str(cases / "case_0" / "case_0_t1.nii.gz"), "label": 1},
            {"case": "b", "flair": str(cases / "case_1" / "case_1_flair.nii.gz")}]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    found = discover_cases(tmp_path / "m.json")
    assert [c["label"] for c in found] == [1, -1]
    assert found[1]["t1"] is None and found[1]["flair"].endswith("flair.nii.gz")
    (tmp_path / "m.csv").write_text("case,t1,label\nx,cases/case_2/case_2_t1.nii.gz,0\n")
    (found,) = discover_cases(tmp_path / "m.csv")
    assert Path(found["t1"]).is_file() and found["label"] == 0


def test_batches_carry_presence_and_zscore(cases: Path) -> None:
    dm = datamodule(cases, val_fraction=0.5, seed=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader()) + list(dm.val_dataloader()) + list(dm.test_dataloader())
    by_case = {c: (b["image"][i], b["present"][i], b["target"][i])
               for b in batches for i, c in enumerate(b["case"])}
    image, present, target = by_case["case_3"]
    assert present.tolist() == [True, True, False, False]
    assert torch.count_nonzero(image[2:]) == 0  # absent: no data, flagged absent
    image, present, target = by_case["case_0"]
    assert present.all() and image.shape == (4, 32, 32, 32) and target.shape == (3, 32, 32, 32)
    for channel in image:  # z-score over the non-zero (brain) voxels, per modality
        brain = channel[channel != 0]
        assert abs(brain.mean().item()) < 1e-3 and abs(brain.std().item() - 1) < 1e-2
    wt, tc, et = target[1], target[0], target[2]
    assert bool((tc <= wt).all()) and bool((et <= tc).all()) and wt.any()  # nested BraTS regions


def test_augmentation_is_seeded_and_keeps_absent_channels_empty(cases: Path) -> None:
    runs = []
    for _ in range(2):
        dm = datamodule(cases, augment=True, seed=1, val_fraction=0.25, modality_dropout=0.5)
        dm.setup("fit")
        runs.append(list(dm.train_dataloader()))
    for a, b in zip(*runs):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["present"], b["present"])
        absent = ~a["present"]
        assert torch.count_nonzero(a["image"][absent]) == 0
        assert a["present"].any(1).all()


def _bad_cases(root: Path) -> dict[str, str]:
    """One bad case per kind of problem; returns case -> expected message part."""
    write_case(root, "trunc", 10)
    f = root / "trunc" / "trunc_t2.nii.gz"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images")
    write_case(root, "shapes", 11)
    write_volume(np.ones((32, 32, 30), np.float32), AFFINE, root / "shapes" / "shapes_flair.nii.gz")
    write_case(root, "nans", 12)
    v = np.ones((32, 32, 32), np.float32)
    v[3, 4, 5] = np.nan
    write_volume(v, AFFINE, root / "nans" / "nans_t1ce.nii.gz")
    write_case(root, "labels", 13)
    seg = np.zeros((32, 32, 32), np.int16)
    seg[10:12, 10:12, 10:12] = 7
    write_volume(seg, AFFINE, root / "labels" / "labels_seg.nii.gz", dtype=np.int16)
    return {"trunc": "trunc_t2.nii.gz", "empty": "no modality files", "shapes": "shapes_flair.nii.gz",
            "nans": "NaN", "labels": "mask labels [7]"}


@pytest.mark.parametrize("bad", ["trunc", "empty", "shapes", "nans", "labels"])
def test_bad_case_stops_the_run_naming_case_and_file(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "data"
    write_case(root, "good_0", 0)
    write_case(root, "good_1", 1)
    expected = _bad_cases(root)
    for other in set(expected) - {bad}:  # keep only this bad case among good ones
        for p in sorted((root / other).iterdir()):
            p.unlink()
        (root / other).rmdir()
    dm = datamodule(root, val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(BadCaseError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert f"case {bad!r}" in message and expected[bad] in message


def test_skip_bad_cases_logs_and_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    for i in range(3):
        write_case(root, f"good_{i}", i)
    bad = _bad_cases(root)
    dm = datamodule(root, val_fraction=0.0, test_fraction=0.0, skip_bad_cases=True)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert sorted(c["case"] for c in dm.datasets["train"].data) == ["good_0", "good_1", "good_2"]
    assert len(dm.skipped) == len(bad)
    assert all(f"case {name!r}" in caplog.text for name in bad)


def test_missing_source_and_bad_options() -> None:
    with pytest.raises(DomainfmError, match="does not exist"):
        discover_cases("no/such/folder")
    with pytest.raises(DomainfmError, match="mask_labels"):
        BrainMRIDataModule(source=".", mask_labels=[0, 1, 3])


def test_ddp_ranks_get_disjoint_shares_of_each_epoch(cases: Path, tmp_path: Path) -> None:
    for i in range(4, 9):  # 9 cases in all: 7 train does not divide by 2 -> one padded repeat
        write_case(cases, f"case_{i}", i)
    dm = datamodule(cases, val_fraction=0.25)
    dm.setup("fit")
    dataset = dm.datasets["train"]
    n = len(dataset)
    for epoch in (0, 1):
        shares = []
        for rank in range(2):
            sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=dm.seed)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        assert len(shares[0]) == len(shares[1]) == (n + 1) // 2
        union = shares[0] + shares[1]
        assert set(union) == set(range(n))  # the whole epoch
        assert len(union) - len(set(union)) == (2 - n % 2) % 2  # duplicates = padding only
        again = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=dm.seed)
        again.set_epoch(epoch)
        assert list(again) == shares[0]  # reproducible from the seed


def test_truncated_gzip_message_is_actionable(tmp_path: Path) -> None:
    from domainfm_medical.io import read_volume

    path = tmp_path / "x.nii.gz"
    write_volume(np.ones((8, 8, 8), np.float32), AFFINE, path)
    path.write_bytes(gzip.compress(b"not a nifti"))
    with pytest.raises(BadCaseError, match="case 'c1', file .*x.nii.gz.*cannot read NIfTI"):
        read_volume(path, "c1")


def test_splits_are_disjoint_seeded_and_name_cases(cases: Path) -> None:
    for i in range(4, 10):  # 10 cases: 3 val, 2 test, 5 train
        write_case(cases, f"case_{i}", i)
    keys = []
    for seed in (0, 0, 1):
        dm = datamodule(cases, val_fraction=0.3, test_fraction=0.2, seed=seed)
        dm.setup("fit")
        keys.append({s: dm.split_keys(s) for s in ("train", "val", "test")})
    split = keys[0]
    assert [len(split[s]) for s in ("train", "val", "test")] == [5, 3, 2]
    assert set(split["train"]) | set(split["val"]) | set(split["test"]) == {f"case_{i}" for i in range(10)}
    assert not set(split["test"]) & (set(split["val"]) | set(split["train"]))
    assert keys[1] == split and keys[2] != split  # seeded
    served = [c for b in dm.test_dataloader() for c in b["case"]]
    assert served == keys[2]["test"]  # the test loader serves the test cases, not validation


def test_data_spec_says_what_heads_metrics_and_predictors_need(cases: Path) -> None:
    dm = datamodule(cases, pixdim=1.5)
    dm.setup("fit")
    spec = dm.data_spec()
    assert spec.inputs == ("t1", "t1ce", "t2", "flair") and spec.num_classes == 3
    assert spec.normalization["method"] == "zscore_nonzero"
    assert spec.task["activation"] == "sigmoid" and spec.task["spacing"] == 1.5
    assert spec.task["roi_size"] == [32, 32, 32] and spec.task["mask_labels"] == [0, 1, 2, 4]
    softmax = datamodule(cases, seg_format="classes", mask_labels=[0, 1, 2, 4], modalities=["t1", "t1ce"])
    softmax.setup("fit")
    spec = softmax.data_spec()
    assert spec.num_classes == 4 and spec.task["activation"] == "softmax" and spec.inputs == ("t1", "t1ce")
    (cases / "labels.csv").write_text("case,label\ncase_0,0\ncase_1,2\ncase_2,1\ncase_3,0\n")
    graded = datamodule(cases, task="classification", val_fraction=0.25, test_fraction=0.25)
    graded.setup("fit")
    assert graded.data_spec().num_classes == 3 and "activation" not in graded.data_spec().task
    assert "case labels in" in graded.data_spec().task["label_source"]


def test_transform_errors_become_one_line_naming_the_case(cases: Path, monkeypatch) -> None:
    """An error inside a MONAI transform (which MONAI wraps in RuntimeError) is one line naming
    the case and its first file."""
    from monai import transforms as mt

    def fail(self, data):
        raise ValueError("resampling failed\nsecond line")

    monkeypatch.setattr(mt.NormalizeIntensityd, "__call__", fail)
    dm = datamodule(cases, val_fraction=0.0, test_fraction=0.0, cache_dir=str(cases.parent / "c"))
    with pytest.raises(BadCaseError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert re.match(r"case '(case_\d)', file '.*/\1_t1\.nii\.gz': preprocessing failed", message)
    assert "ValueError: resampling failed second line" in message and "\n" not in message


def test_present_modalities_keep_a_subset_present(cases: Path) -> None:
    """Every case keeps only the chosen modalities present (the others absent, zero voxels);
    splits and the data specification are those of all modalities, so a model trained on four
    is scored with a subset of them."""
    full = datamodule(cases, val_fraction=0.25, test_fraction=0.25)
    full.setup("fit")
    some = datamodule(cases, val_fraction=0.25, test_fraction=0.25, present_modalities=["t1ce", "flair"])
    some.setup("fit")
    assert all(some.split_keys(s) == full.split_keys(s) for s in ("train", "val", "test"))
    assert some.data_spec() == full.data_spec()
    served = {}
    for a, b in zip(full.val_dataloader(), some.val_dataloader()):
        for i, case in enumerate(b["case"]):
            served[case] = b["present"][i].tolist()
            assert torch.equal(b["image"][i, [1, 3]], a["image"][i, [1, 3]])  # kept: unchanged
            assert torch.count_nonzero(b["image"][i, [0, 2]]) == 0
        assert torch.equal(b["target"], a["target"])
    expected = {"case_3": [False, True, False, False]}  # case_3 has only t1 and t1ce
    assert served and all(v == expected.get(c, [False, True, False, True]) for c, v in served.items())
    with pytest.raises(DomainfmError, match=r"present_modalities \['dwi'\] must be a non-empty subset"):
        datamodule(cases, present_modalities=["dwi"])
    only = datamodule(cases, val_fraction=0.0, test_fraction=0.0, present_modalities=["flair"])
    with pytest.raises(BadCaseError, match=r"case 'case_3': has none of the present_modalities "
                                           r"\['flair'\] \(it has t1, t1ce\)"):
        only.setup("fit")


def test_cache_is_keyed_by_the_preprocessing_options(cases: Path, tmp_path: Path) -> None:
    """MONAI keys its cache by the case's files and the transforms' names only: the same cache
    folder with another crop must not serve the volumes cached for the first."""
    shapes = []
    for roi in (32, 24):
        dm = datamodule(cases, roi_size=roi, val_fraction=0.5, cache_dir=str(tmp_path / "cache"))
        dm.setup("fit")
        shapes.append(tuple(next(iter(dm.val_dataloader()))["image"].shape[2:]))
    assert shapes == [(32, 32, 32), (24, 24, 24)]
