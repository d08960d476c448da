"""Every shipped run config validates against the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.components import resolve
from domainfm.config import load_config
from domainfm.host import get_host

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(ROOT.glob("plugins/*/configs/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_shipped_config_is_valid(path):
    config = load_config(path)
    host = get_host()
    plugin = path.parent.parent.name
    if host.plugins.get(plugin) is None or host.plugins[plugin].status != "ok":
        pytest.skip(f"plugin {plugin} is not installed")
    stage = "finetune" if config.head is not None or config.init else "pretrain"
    if config.objective is not None:
        stage = "pretrain"
    resolve(host, config, stage)
