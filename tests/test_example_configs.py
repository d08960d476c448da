"""Every shipped run config validates against the installed plugins (names, parameters, values)."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.config import load_config
from domainfm.host import Host
from domainfm.session import Session

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(ROOT.glob("plugins/*/configs/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_shipped_config_is_valid(path):
    config = load_config(path)
    host = Host()
    plugin = path.parent.parent.name
    if host.plugins.get(plugin) is None or host.plugins[plugin].status != "ok":
        pytest.skip(f"plugin {plugin} is not installed")
    verb = "finetune" if config.head is not None or config.init else "pretrain"
    if config.objective is not None:
        verb = "pretrain"
    session = Session.open(verb, path, host=host, read=False)
    assert session.config.data.name.split(".")[0] == plugin
    assert session.config is not config  # resolution returns a new object
