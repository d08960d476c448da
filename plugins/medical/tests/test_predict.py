"""NIfTI in / NIfTI out, and nibabel's real MRI volumes as single-modality cases."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.testing import data_path

from domainfm.errors import DomainfmError
from domainfm.spec import DataSpec
from domainfm_medical.data import BrainMRIDataModule
from domainfm_medical.data.fixtures import example_case
from domainfm_medical.data.transforms import NORMALIZATION
from domainfm_medical.encoder import MODALITIES, build_encoder
from domainfm_medical.heads import build_segmentation
from domainfm_medical.objective import build_objective
from domainfm_medical.predict import build_reconstruct, build_segment

ANATOMICAL = Path(data_path) / "anatomical.nii"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    encoder = build_encoder(preset="tiny")
    spec = SimpleNamespace(data=DataSpec(inputs=MODALITIES, num_classes=3, normalization=NORMALIZATION,
                                         task={"activation": "sigmoid", "mask_labels": [0, 1, 2, 4]}))
    head = build_segmentation(encoder, num_classes=3, activation="sigmoid", feature_size=8)
    return SimpleNamespace(encoder=encoder, head=head, objective=build_objective(encoder), spec=spec)


def test_segment_keeps_input_affine_and_shape(model, tmp_path: Path) -> None:
    case = example_case(tmp_path)
    (written,) = build_segment(overlap=0.0)(model, case, tmp_path / "out")
    reference = nib.load(str(case / "t1.nii.gz"))
    seg = nib.load(str(written))
    assert written.name == "example_case_seg.nii.gz"
    assert seg.shape == reference.shape == (40, 36, 32)
    np.testing.assert_allclose(seg.affine, reference.affine)
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 4}


def test_reconstruct_writes_the_missing_modality(model, tmp_path: Path) -> None:
    case = example_case(tmp_path)  # t2 is missing
    (written,) = build_reconstruct(overlap=0.0)(model, case, tmp_path / "out")
    assert written.name == "example_case_t2.nii.gz"
    image = nib.load(str(written))
    assert image.shape == (40, 36, 32)
    np.testing.assert_allclose(image.affine, nib.load(str(case / "t1.nii.gz")).affine)
    with pytest.raises(DomainfmError, match="objective"):
        build_reconstruct()(SimpleNamespace(encoder=model.encoder, objective=None), case, tmp_path)


@pytest.mark.skipif(not ANATOMICAL.is_file(), reason="nibabel's bundled anatomical.nii is absent")
def test_real_mri_single_modality_case(model, tmp_path: Path) -> None:
    """nibabel's real T1 (33x41x25, non-isotropic) as a t1-only case: data, encoder,
    reconstruction of the other modalities, and NIfTI written with the input's affine."""
    (tmp_path / "m.csv").write_text(f"case,t1\nanatomical,{ANATOMICAL}\nanatomical_2,{ANATOMICAL}\n")
    dm = BrainMRIDataModule(source=tmp_path / "m.csv", roi_size=32, val_fraction=0.5, augment=False,
                            task="none")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["present"].tolist() == [[True, False, False, False]]
    assert batch["image"].shape == (1, 4, 32, 32, 32) and batch["image"][0, 0].abs().sum() > 0
    features = model.encoder(batch)
    assert features["tokens"].shape == (1, 64, 192) and torch.isfinite(features["embedding"]).all()
    recon = model.objective.reconstruct(model.encoder, batch, missing=["t2", "flair"])
    assert recon["flair"].shape == (1, 32, 32, 32) and torch.isfinite(recon["flair"]).all()


@pytest.mark.skipif(not ANATOMICAL.is_file(), reason="nibabel's bundled anatomical.nii is absent")
def test_real_mri_reconstruction_keeps_affine(model, tmp_path: Path) -> None:
    written = build_reconstruct(modality="t1", missing=["flair"], overlap=0.0)(model, ANATOMICAL, tmp_path)
    (path,) = written
    source = nib.load(str(ANATOMICAL))
    out = nib.load(str(path))
    assert path.name == "anatomical_flair.nii.gz" and out.shape == source.shape
    np.testing.assert_allclose(out.affine, source.affine)
    assert np.isfinite(np.asarray(out.dataobj)).all()


def test_predictor_input_errors(model, tmp_path: Path) -> None:
    with pytest.raises(DomainfmError, match="cannot tell the modality"):
        build_segment()(model, ANATOMICAL, tmp_path)
    with pytest.raises(DomainfmError, match="neither a case folder"):
        build_segment()(model, tmp_path / "nothing.txt", tmp_path)


def test_reconstruct_png_shows_inputs_and_reconstructions(model, tmp_path: Path) -> None:
    case = example_case(tmp_path, shape=(32, 32, 32))  # t2 is missing; one window
    written = build_reconstruct(overlap=0.0, png=True)(model, case, tmp_path / "out")
    assert [p.name for p in written] == ["example_case_t2.nii.gz", "example_case_reconstruction.png"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predictors_read_modalities_from_the_data_spec(model, tmp_path: Path) -> None:
    """A model trained on t1 and flair reads only those, whatever else the case folder holds."""
    import shutil

    case = example_case(tmp_path / "a", shape=(32, 32, 32))  # t1, t1ce, flair; one window
    only = tmp_path / "b" / case.name
    only.mkdir(parents=True)
    for name in ("t1", "flair"):
        shutil.copy(case / f"{name}.nii.gz", only / f"{name}.nii.gz")
    two = SimpleNamespace(**{**vars(model), "spec": SimpleNamespace(data=DataSpec(
        inputs=("t1", "flair"), num_classes=3, normalization=NORMALIZATION))})
    (a,) = build_segment(overlap=0.0)(two, case, tmp_path / "out_a")
    (b,) = build_segment(overlap=0.0)(two, only, tmp_path / "out_b")
    assert (case / "t1ce.nii.gz").is_file() and a.read_bytes() == b.read_bytes()
    bad = SimpleNamespace(**{**vars(model), "spec": SimpleNamespace(data=DataSpec(inputs=MODALITIES))})
    with pytest.raises(DomainfmError, match="normalisation"):
        build_segment()(bad, case, tmp_path / "out_d")
    assert not (tmp_path / "out_d").exists()
