"""Shared fixtures: a few small synthetic cases written as real NIfTI files."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm_medical.data.synthetic import write_case


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    """Four cases in BraTS-style folders; case_3 lacks t2 and flair."""
    root = tmp_path / "cases"
    for i in range(3):
        write_case(root, f"case_{i}", i)
    write_case(root, "case_3", 3, modalities=("t1", "t1ce"))
    return root
