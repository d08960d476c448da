"""Finding cases: a folder of case folders, or a CSV/JSON manifest.

A case is a dict ``{"case": name, <modality>: path or None..., "mask": path or None,
"label": int (-1 when unknown)}``. Discovery only lists files; reading and validating them is
:class:`~domainfm_medical.data.transforms.LoadCased`'s job, so one bad case can be reported (or
skipped) on its own. Problems with the listing itself (no cases, a manifest that cannot be
parsed or names none of the modalities, two cases of one name) are one-line errors naming the
folder or manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from domainfm.errors import DataError
from domainfm_medical.io import is_nifti, one_line

MODALITIES = ("t1", "t1ce", "t2", "flair")
BRATS_LABELS = (0, 1, 2, 4)
MASK_NAMES = ("seg", "mask", "label", "labels")
FOLDER = "folder"  # a case folder's path (for messages)
UNMATCHED = "unmatched"  # NIfTI files of a case folder named after no modality (for messages)


def stem(path: str | Path) -> str:
    """The lower-case file name without ``.nii``/``.nii.gz``."""
    name = Path(path).name.lower()
    return name[:-7] if name.endswith(".nii.gz") else name[:-4]


def names_modality(path: str | Path, name: str) -> bool:
    """``t1.nii.gz`` and ``BraTS_0001_t1.nii.gz`` name modality ``t1``."""
    s = stem(path)
    return s == name or s.endswith("_" + name)


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
        cases = _cases_from_folder(source, modalities)
    elif not source.is_file():
        raise DataError(f"data source {str(source)!r} does not exist; expected a folder of cases "
                        "or a .csv/.json manifest")
    else:
        cases = _cases_from_manifest(source, modalities)
    seen: set[str] = set()
    for case in cases:
        if case["case"] in seen:
            raise DataError(f"{str(source)!r} lists case {case['case']!r} twice; case names "
                            "must be unique (they identify the splits)")
        seen.add(case["case"])
    return cases


def _read_rows(source: Path) -> list[Any]:
    if source.suffix == ".csv":
        try:
            table = pd.read_csv(source, comment="#", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"manifest {str(source)!r} is not a readable CSV ({one_line(exc)}); "
                            "expected columns case, <modalities>, mask, label") from None
        return table.to_dict("records")
    if source.suffix == ".json":
        try:
            rows = json.loads(source.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"manifest {str(source)!r} is not valid JSON ({one_line(exc)})") from None
        if isinstance(rows, dict):
            rows = rows.get("cases", rows.get("training"))
        if not isinstance(rows, list):
            raise DataError(f"manifest {str(source)!r} must be a list of cases (or {{'cases': [...]}})")
        return rows
    raise DataError(f"manifest {str(source)!r} must be .csv or .json")


def _cases_from_manifest(source: Path, modalities: Sequence[str]) -> list[dict[str, Any]]:
    rows = _read_rows(source)
    if not rows:
        raise DataError(f"manifest {str(source)!r} lists no cases")
    keys = {k for row in rows if isinstance(row, dict) for k in row}
    if not keys & set(modalities):
        raise DataError(f"manifest {str(source)!r} has no entry for any of the modalities "
                        f"{', '.join(modalities)} (it has: {', '.join(sorted(map(str, keys)))})")
    cases = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("case"):
            raise DataError(f"manifest {str(source)!r}, row {i}: missing the 'case' field")
        case = {"case": str(row["case"])}
        for key in (*modalities, "mask"):
            value = row.get(key) or None
            case[key] = None if value is None else str(source.parent / str(value))
        case["label"] = _label(row.get("label"), case["case"], source)
        cases.append(case)
    return cases


def _label(value: Any, case: str, where: Path) -> int:
    if value is None or value == "":
        return -1
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number != number or number != int(number):
        raise DataError(f"case {case!r} in {str(where)!r}: label {value!r} is not an integer")
    return int(number)


def case_from_folder(folder: Path, modalities: Sequence[str], label: int = -1) -> dict[str, Any]:
    """One case from its folder, files matched by modality name (see :func:`discover_cases`)."""
    folder = Path(folder)
    files = [p for p in sorted(folder.iterdir()) if is_nifti(p)]
    case: dict[str, Any] = {"case": folder.name, "label": label, FOLDER: str(folder)}
    matched: set[Path] = set()
    for key, names in [(m, (m,)) for m in modalities] + [("mask", MASK_NAMES)]:
        hits = [p for p in files if any(names_modality(p, n) for n in names)]
        if len(hits) > 1:
            raise DataError(f"case {folder.name!r} ({str(folder)!r}): several files match {key!r}: "
                            f"{', '.join(p.name for p in hits)}")
        case[key] = str(hits[0]) if hits else None
        matched.update(hits)
    case[UNMATCHED] = [p.name for p in files if p not in matched]
    return case


def _cases_from_folder(root: Path, modalities: Sequence[str]) -> list[dict[str, Any]]:
    labels: dict[str, int] = {}
    if (root / "labels.csv").is_file():
        for row in _read_rows(root / "labels.csv"):
            if "case" not in row or "label" not in row:
                raise DataError(f"{str(root / 'labels.csv')!r} needs the columns case,label")
            labels[str(row["case"])] = _label(row["label"], str(row["case"]), root / "labels.csv")
    cases = [case_from_folder(folder, modalities, labels.get(folder.name, -1))
             for folder in sorted(p for p in root.iterdir() if p.is_dir())]
    if not cases:
        raise DataError(f"data folder {str(root)!r} holds no case sub-folders and no manifest")
    return cases
