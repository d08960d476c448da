"""Shared fixtures: a few small synthetic cases written as real NIfTI files, one intra-op thread."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from domainfm_medical.data.synthetic import write_case


@pytest.fixture(autouse=True)
def one_intra_op_thread() -> Iterator[None]:
    """Run each test on one intra-op thread. On this shared 2-core machine two threads per
    process spin-wait for each other: the plugin's tests took 304 s of CPU (705 s wall) with
    torch's default of two threads and 82 s (168 s wall) with one, under a load average of 6-7."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def written_cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four cases of :func:`cases`, generated once per session."""
    root = tmp_path_factory.mktemp("template") / "cases"
    for i in range(3):
        write_case(root, f"case_{i}", i)
    write_case(root, "case_3", 3, modalities=("t1", "t1ce"))
    return root


@pytest.fixture
def cases(written_cases: Path, tmp_path: Path) -> Path:
    """Four cases in BraTS-style folders; case_3 lacks t2 and flair (a fresh copy per test, which
    may add files)."""
    return Path(shutil.copytree(written_cases, tmp_path / "cases"))
