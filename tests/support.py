"""Helpers shared by the host tests: temporary plugin distributions, CLI runs, configs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path


BIN = Path(sys.executable).parent


class PluginFactory:
    """Writes plugin modules as installed distributions (a module plus a .dist-info folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, code: str, distribution: str | None = None,
                 version: str = "1.0", module: str | None = None) -> Path:
        distribution = distribution or f"domainfm-{name}"
        module = module or f"tmp_plugin_{name}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(code))
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[domainfm]\n{name} = {module}\n")
        importlib.invalidate_caches()
        return self.root

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), env.get("PYTHONPATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``domainfm`` console script."""
    return subprocess.run([str(BIN / "domainfm"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def example_config(tmp_path: Path, **changes: object) -> dict[str, object]:
    """A small pretraining config on the example plugin."""
    config: dict[str, object] = {
        "data": {"name": "example.waves", "params": {"num_samples": 64, "batch_size": 8}},
        "encoder": {"name": "example.patch_transformer", "preset": "tiny"},
        "output_dir": str(tmp_path / "run"),
        "trainer": {"max_steps": 6, "enable_progress_bar": False, "log_every_n_steps": 1},
    }
    config.update(changes)
    return config
