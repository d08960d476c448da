"""A fifth domain plugs in untouched: a copy of the example plugin under a new distribution and
plugin name installs, passes the registry-parametrised conformance tests and is listed, with no
change to the host, its tests or its benchmarks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "plugins" / "example"


def copy_plugin(destination: Path, name: str) -> Path:
    """The example plugin renamed to ``name`` (distribution ``domainfm-<name>``)."""
    root = destination / name
    shutil.copytree(TEMPLATE, root, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (root / "domainfm_example").rename(root / f"domainfm_{name}")
    swaps = [("domainfm_example", f"domainfm_{name}"), ("domainfm-example", f"domainfm-{name}"),
             (r'(["\'])example\.', rf"\1{name}."), (r'plugin = "example"', f'plugin = "{name}"'),
             (r"^example = ", f"{name} = ")]
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml", ".yaml"):
            text = path.read_text()
            for old, new in swaps:
                text = re.sub(old, new, text, flags=re.M)
            path.write_text(text)
    return root


def test_a_copied_plugin_installs_passes_conformance_and_is_listed(tmp_path):
    plugin = copy_plugin(tmp_path, "acme")
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                              "--no-build-isolation", "--target", str(site), str(plugin)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}

    listing = subprocess.run([str(Path(sys.executable).parent / "domainfm"), "plugins"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr[-2000:]
    row = next(line for line in listing.stdout.splitlines() if line.startswith("acme "))
    assert "domainfm-acme" in row and " ok " in f" {row} "

    tests = subprocess.run([sys.executable, "-m", "pytest", str(plugin / "tests"), "-q",
                            "-p", "no:cacheprovider", "-rA"], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=600)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    passed = re.findall(r"^PASSED \S+::(test_\w+)\[?([^\]\s]*)", tests.stdout, flags=re.M)
    kinds = {test for test, _ in passed}
    assert {"test_encoder", "test_pretraining", "test_dataset", "test_finetuning", "test_lora",
            "test_predictor", "test_bad_input"} <= kinds, kinds
    assert ("test_encoder", "acme.patch_transformer") in passed  # one test id per component
    assert all(param.startswith("acme.") for test, param in passed if param)
