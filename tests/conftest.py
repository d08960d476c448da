"""Fixtures for host tests."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import PluginFactory, run_cli


@pytest.fixture
def plugin_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginFactory]:
    factory = PluginFactory(tmp_path / "site")
    monkeypatch.syspath_prepend(str(factory.root))
    yield factory
    for name in list(sys.modules):
        if name.startswith("tmp_plugin_"):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def cli() -> Callable[..., object]:
    return run_cli
