"""The public face is exactly what __all__ says, and the wheel carries every module."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import domainfm

ROOT = Path(__file__).resolve().parent.parent


def test_all_names_resolve_and_nothing_else_is_public():
    for name in domainfm.__all__:
        assert getattr(domainfm, name) is not None, name
    assert set(domainfm.__all__) == {
        "DataSpec", "DomainfmError", "Host", "Model", "ModelSpec", "RunConfig", "RunResult", "demo",
        "evaluate", "export", "finetune", "hookimpl", "load_config", "load_encoder", "load_model",
        "pack", "predict", "predict_from_config", "pretrain", "rank", "soup",
    }


def test_every_cli_verb_is_a_python_function():
    for verb in ("pretrain", "finetune", "evaluate", "export", "predict", "demo", "pack", "rank",
                 "soup"):
        assert callable(getattr(domainfm, verb))


def test_wheel_contains_every_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("domainfm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"domainfm/" + str(p.relative_to(ROOT / "core")) for p in (ROOT / "core").rglob("*.py")}
    assert expected <= names, sorted(expected - names)
    assert any(n.endswith("entry_points.txt") for n in names)
