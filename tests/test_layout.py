"""The shape of the code: plugins use only the host's public modules, no plugin has an import
cycle, and listing plugins imports no torch. Every installed plugin is checked (registry-driven)."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata, util
from pathlib import Path

import pytest

from domainfm.host import ENTRY_POINT_GROUP

# Everything a plugin needs from the host lives in these modules (see README "Writing a plugin").
PUBLIC_MODULES = {"domainfm", "domainfm.errors", "domainfm.hookspecs", "domainfm.io",
                  "domainfm.records", "domainfm.spec", "domainfm.testing", "domainfm.weights"}


def _packages() -> list[tuple[str, Path]]:
    found = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        package = ep.value.split(":")[0].split(".")[0]
        spec = util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            found[package] = Path(next(iter(spec.submodule_search_locations)))
    return sorted(found.items())


PACKAGES = _packages()
HOST_PACKAGE = ("domainfm", Path(util.find_spec("domainfm").submodule_search_locations[0]))


def _imports(path: Path, package: str, members: bool = True) -> list[tuple[str, int]]:
    """Every module imported anywhere in the file (function-level imports included); with
    ``members``, also ``module.name`` for each ``from module import name``."""
    tree = ast.parse(path.read_text(), str(path))
    module = ".".join((package, *path.relative_to(_root(package)).with_suffix("").parts))
    module = module.removesuffix(".__init__")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level] if not path.name == "__init__.py" \
                    else module.split(".")[: len(module.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
            if members:
                out += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
    return out


def _root(package: str) -> Path:
    return dict([*PACKAGES, HOST_PACKAGE])[package]


def _modules(package: str) -> dict[str, Path]:
    root = _root(package)
    out = {}
    for path in root.rglob("*.py"):
        name = ".".join((package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        out[name] = path
    return out


@pytest.mark.parametrize("package", [p for p, _ in PACKAGES])
def test_plugins_import_only_the_public_host_modules(package):
    offending = []
    for name, path in _modules(package).items():
        for imported, line in _imports(path, package, members=False):
            if imported.split(".")[0] == "domainfm" and imported not in PUBLIC_MODULES:
                offending.append(f"{path.name}:{line} imports {imported}")
    assert not offending, f"{package} reaches into private host modules: {offending}"


@pytest.mark.parametrize("package", [p for p, _ in [*PACKAGES, HOST_PACKAGE]])
def test_no_import_cycle_between_the_modules_of_a_package(package):
    """Plugins and the host alike: function-level imports count, so none hides a cycle."""
    modules = _modules(package)
    graph = {name: sorted({m for imported, _ in _imports(path, package)
                           for m in modules if imported == m and m != name})
             for name, path in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt):] + [node, nxt] if nxt in trail else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, trail + [node]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if state.get(start) is None and visit(start, []):
            break
    assert not cycle, f"import cycle in {package}: {' -> '.join(dict.fromkeys(cycle))}"


def test_listing_plugins_imports_no_torch():
    code = ("import sys\nfrom domainfm.cli import main\nassert main(['plugins']) == 0\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning'))\n"
            "print('HEAVY', heavy[:5])\nassert not heavy, heavy[:5]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ok" in result.stdout


ROOT = Path(__file__).resolve().parent.parent


def test_no_training_loop_outside_the_engine():
    """Plugins and research scripts train only through the engine: no backward pass or optimiser
    step of their own (benchmarks may time bare reference loops against it)."""
    sources = [*ROOT.glob("plugins/*/domainfm_*/**/*.py"), *ROOT.glob("scripts/**/*.py")]
    assert sources
    found = [f"{p.relative_to(ROOT)}:{i + 1}" for p in sources
             for i, line in enumerate(p.read_text().splitlines())
             if any(call in line for call in (".backward(", "optimizer.step(", ".zero_grad("))]
    assert not found, f"training loops outside core/engine: {found}"
