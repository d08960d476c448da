"""Files the conformance harness runs on: tiny copies of the datasets, an example case, and the
broken NIfTI inputs users send, each of which must be refused with one line naming it.

Broken inputs are small (16^3) so the whole matrix stays fast; the plugin README lists the
message each one gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainfm.records import BadInput
from domainfm_medical.data.synthetic import AFFINE, MODALITIES, generate, make_case, write_case
from domainfm_medical.io import write_volume

SIZE = 16
TINY_FILES = {"num_cases": 8, "size": 32}


def synthetic_files(folder: Path) -> dict[str, object]:
    """The embedded brains written into ``folder`` (the harness trains on them, then deletes them)."""
    generate(folder, num_cases=TINY_FILES["num_cases"], size=TINY_FILES["size"], seed=0)
    return {"root": str(folder), **TINY_FILES}


def brain_mri_files(folder: Path) -> dict[str, object]:
    """Six BraTS-style case folders (one lacking t2 and flair) for ``medical.brain_mri``."""
    for i in range(5):
        write_case(folder, f"case_{i}", i)
    write_case(folder, "case_5", 5, modalities=("t1", "t1ce"))
    return {"source": str(folder)}


def example_case(folder: Path, *, shape: tuple[int, int, int] = (40, 36, 32),
                 drop: tuple[str, ...] = ("t2",)) -> Path:
    """A synthetic case larger than the tiny crop (so sliding windows are used), one modality
    dropped; returns its folder."""
    volumes, _, _ = make_case(np.random.default_rng(7), max(shape))
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-20.0, -18.0, -16.0]
    case = Path(folder) / "example_case"
    for name in MODALITIES:
        if name not in drop:
            write_volume(volumes[name][: shape[0], : shape[1], : shape[2]], affine, case / f"{name}.nii.gz")
    return case


def harness_case(folder: Path) -> Path:
    """The predictors' example for the harness: two sliding windows along x (cheaper than four)."""
    return example_case(folder, shape=(40, 32, 32))


# --------------------------------------------------------------------------- broken inputs


def _case(root: Path, name: str, seed: int, **kwargs: object) -> Path:
    return write_case(root, name, seed, size=SIZE, **kwargs)  # type: ignore[arg-type]


def _noise(seed: int, shape: tuple[int, ...] = (SIZE,) * 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1, 100, shape).astype(np.float32)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _broken_cases(folder: Path) -> dict[str, tuple[Path, str]]:
    """Case folders (or files) broken in every way both datasets and predictors must refuse:
    name -> (path, the text the one-line error must contain)."""
    out: dict[str, tuple[Path, str]] = {}
    case = _case(folder / "truncated", "trunc", 1)
    _truncate(case / "trunc_t2.nii.gz")
    out["truncated nii.gz"] = (case, "trunc_t2.nii.gz")
    case = folder / "unknown" / "dwi_only"
    write_volume(_noise(2), AFFINE, case / "dwi_only_dwi.nii.gz")
    write_volume(_noise(3), AFFINE, case / "dwi_only_adc.nii.gz")
    out["no configured modality"] = (case, "dwi_only")
    case = _case(folder / "nan", "nan_case", 4)
    volume = _noise(4)
    volume[3, 4, 5] = np.nan
    write_volume(volume, AFFINE, case / "nan_case_t1ce.nii.gz")
    out["NaN voxels"] = (case, "nan_case_t1ce.nii.gz")
    case = _case(folder / "zeros", "zero_case", 5)
    write_volume(np.zeros((SIZE,) * 3, np.float32), AFFINE, case / "zero_case_flair.nii.gz")
    out["all-zero modality"] = (case, "zero_case_flair.nii.gz")
    case = _case(folder / "shapes", "shape_case", 6)
    write_volume(_noise(6, (SIZE, SIZE, SIZE - 2)), AFFINE, case / "shape_case_flair.nii.gz")
    out["mismatched shapes"] = (case, "shape_case_flair.nii.gz")
    case = _case(folder / "affines", "affine_case", 7)
    shifted = AFFINE.copy()
    shifted[0, 3] += 5.0
    write_volume(_noise(7), shifted, case / "affine_case_t2.nii.gz")
    out["mismatched affines"] = (case, "affine_case_t2.nii.gz")
    case = folder / "empty" / "empty_case"
    case.mkdir(parents=True)
    out["empty case folder"] = (case, "empty_case")
    return out


def dataset_bad_inputs(folder: Path) -> list[BadInput]:
    """Broken data sources for ``medical.brain_mri``: each is one case folder inside a data
    folder, or a broken manifest."""
    folder = Path(folder)
    cases = [BadInput(name, expect, {"source": str(path.parent)})
             for name, (path, expect) in _broken_cases(folder / "cases").items()]
    case = _case(folder / "labels", "labels_case", 8)
    seg = np.zeros((SIZE,) * 3, np.int16)
    seg[4:8, 4:8, 4:8] = 7
    write_volume(seg, AFFINE, case / "labels_case_seg.nii.gz", dtype=np.int16)
    cases.append(BadInput("mask labels outside mask_labels", "labels_case_seg.nii.gz",
                          {"source": str(case.parent)}))
    (folder / "no_cases").mkdir()
    cases.append(BadInput("empty data folder", "no_cases", {"source": str(folder / "no_cases")}))
    manifests = {
        "empty manifest": ("empty_manifest.csv", "case,t1,t1ce,t2,flair,mask,label\n"),
        "manifest of other modalities": ("other_modalities.csv", "case,dwi,adc\na,a_dwi.nii.gz,a_adc.nii.gz\n"),
        "manifest naming a missing file": ("missing_file.csv", "case,t1\nghost,ghost_t1.nii.gz\n"),
        "duplicate case names": ("duplicates.csv", "case,t1\nx,x_t1.nii.gz\nx,y_t1.nii.gz\n"),
    }
    for name, (file, text) in manifests.items():
        (folder / file).write_text(text)
        expect = "ghost_t1.nii.gz" if file == "missing_file.csv" else file
        cases.append(BadInput(name, expect, {"source": str(folder / file)}))
    return cases


def predictor_bad_inputs(folder: Path) -> list[BadInput]:
    """Broken inputs for ``medical.segment``: case folders and single files."""
    folder = Path(folder)
    cases = [BadInput(name, expect, source=str(path))
             for name, (path, expect) in _broken_cases(folder).items()]
    write_volume(_noise(9), AFFINE, folder / "scan_dwi.nii.gz")
    cases.append(BadInput("single file of an unknown modality", "scan_dwi.nii.gz",
                          source=str(folder / "scan_dwi.nii.gz")))
    series = folder / "series"
    write_volume(np.stack([_noise(10), _noise(11)], -1), AFFINE, series / "series_t1.nii.gz")
    cases.append(BadInput("4D series", "series_t1.nii.gz", source=str(series)))
    (folder / "notes.txt").write_text("not an image\n")
    cases.append(BadInput("not NIfTI", "notes.txt", source=str(folder / "notes.txt")))
    cases.append(BadInput("missing input", "no_such_case", source=str(folder / "no_such_case")))
    return cases


def reconstruct_bad_inputs(folder: Path) -> list[BadInput]:
    """``medical.reconstruct``'s broken inputs, plus a case that lacks nothing to reconstruct."""
    cases = predictor_bad_inputs(folder)
    complete = _case(Path(folder) / "complete", "complete_case", 12, mask=False)
    cases.append(BadInput("nothing missing", "complete_case", source=str(complete)))
    return cases
