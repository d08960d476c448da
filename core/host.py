"""Plugin discovery, isolation and the component registry.

Entry points of the group ``domainfm`` are loaded one by one (pluggy's own loader stops at the
first broken plugin): a plugin that fails to import, to register or to return valid records is
recorded with its error and skipped, and every other plugin keeps working.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from domainfm import hookspecs
from domainfm.errors import ComponentConflict, ComponentNotFound
from domainfm.records import KINDS, RECORD_TYPES, Kind, Record
from domainfm.schema import did_you_mean

ENTRY_POINT_GROUP = "domainfm"
DISABLE_ENV = "DOMAINFM_DISABLE_PLUGINS"
BUILTIN_PLUGINS = ("domainfm.adapters", "domainfm.streaming")


@dataclass
class PluginInfo:
    """What ``domainfm plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # ok | broken | disabled
    error: str | None = None
    components: list[str] = field(default_factory=list)
    unknown_hooks: list[str] = field(default_factory=list)


def disabled_from_env() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


class Host:
    """The plugin manager plus a registry of components by kind and name.

    A host is built once per command (or per call of a public function) and passed down
    explicitly; there is no process-wide host. Plugins named in ``disable`` or in
    ``$DOMAINFM_DISABLE_PLUGINS`` are listed as disabled and never imported.
    """

    def __init__(self, disable: Iterable[str] = (), entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.registry: dict[Kind, dict[str, Record]] = {kind: {} for kind in KINDS}
        self._owner: dict[str, str] = {}  # component name -> distribution
        self.disabled = set(disable) | disabled_from_env()
        for builtin in BUILTIN_PLUGINS:
            self._load(builtin.rsplit(".", 1)[-1], "domainfm", _version("domainfm"),
                       lambda b=builtin: __import__(b, fromlist=["_"]))
        if entry_points:
            for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                dist = ep.dist.name if ep.dist else "?"
                version = ep.dist.version if ep.dist else "?"
                self._load(ep.name, dist, version, ep.load)

    # ------------------------------------------------------------------ discovery

    def _load(self, name: str, dist: str, version: str, load: Any) -> PluginInfo:
        info = PluginInfo(name=name, distribution=dist, version=version)
        first = self.plugins.get(name)
        if first is not None:  # two distributions claim one plugin name: keep the first
            info.status = "broken"
            info.error = (f"plugin name {name!r} is registered by both distributions "
                          f"{first.distribution!r} and {dist!r}")
            self.plugins[f"{name} ({dist})"] = info
            return info
        self.plugins[name] = info
        if name in self.disabled:
            info.status = "disabled"
            return info
        try:
            module = load()
            info.unknown_hooks = sorted(
                attr for attr in dir(module)
                if attr.startswith("domainfm_") and not hasattr(self.pm.hook, attr)
            )
            self.pm.register(module, name=name)
            try:
                self._collect(name, dist, module)
            except Exception:
                self.pm.unregister(module)
                raise
        except Exception as exc:  # a broken plugin must not take down the host
            info.status = "broken"
            info.error = f"{type(exc).__name__}: {exc}"
            info.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            return info
        info.components = sorted(self._names_of(name))
        return info

    def _collect(self, plugin: str, dist: str, module: ModuleType) -> None:
        caller = self.pm.subset_hook_caller  # call only this plugin's implementations
        others = [p for p in self.pm.get_plugins() if p is not module]
        found: list[Record] = []
        for kind in KINDS:
            hook = caller(f"domainfm_{kind}s", remove_plugins=others)
            for records in hook():
                for record in records or []:
                    expected = RECORD_TYPES[kind]
                    if not isinstance(record, expected):
                        raise TypeError(
                            f"domainfm_{kind}s returned {type(record).__name__}, "
                            f"expected {expected.__name__}"
                        )
                    if record.plugin != plugin:
                        raise ValueError(
                            f"component {record.name!r} must be named '{plugin}.<name>' "
                            f"after its plugin {plugin!r}"
                        )
                    found.append(record)
        for record in found:
            owner = self._owner.get(record.name)
            if owner is not None:
                raise ComponentConflict(
                    f"component {record.name!r} is registered by both distributions "
                    f"{owner!r} and {dist!r}"
                )
        for record in found:
            self.registry[record.kind][record.name] = record
            self._owner[record.name] = dist

    def _names_of(self, plugin: str) -> list[str]:
        return [n for kind in KINDS for n, r in self.registry[kind].items() if r.plugin == plugin]

    # ------------------------------------------------------------------ look-up

    def get(self, kind: Kind, name: str) -> Any:
        """The record of ``kind`` named ``name``, or an error listing the valid names."""
        try:
            return self.registry[kind][name]
        except KeyError:
            plugin = name.split(".", 1)[0]
            info = self.plugins.get(plugin)
            why = ""
            if info and info.status == "broken":
                why = f" Plugin {plugin!r} is broken: {info.error}."
            elif info and info.status == "disabled":
                raise ComponentNotFound(
                    f"{kind} {name!r} belongs to plugin {plugin!r}, which is disabled "
                    f"(--disable-plugin or ${DISABLE_ENV})")
            raise ComponentNotFound(
                f"unknown {kind} {name!r}.{why}{did_you_mean(name, self.registry[kind])}"
            ) from None

    def components(self, kind: Kind | None = None) -> list[Record]:
        kinds = [kind] if kind else list(KINDS)
        return [r for k in kinds for _, r in sorted(self.registry[k].items())]

    def plugin_of(self, component: str) -> PluginInfo:
        return self.plugins[component.split(".", 1)[0]]

    @property
    def hook(self) -> Any:
        return self.pm.hook


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"


__all__ = ["BUILTIN_PLUGINS", "DISABLE_ENV", "ENTRY_POINT_GROUP", "Host", "PluginInfo",
           "disabled_from_env"]
