"""Tiny and broken copies of each dataset, written as files for the conformance harness.

``*_files(folder)`` write a small real dataset (the harness trains on it, exports, deletes it
and checks that the model still predicts); ``*_bad_inputs(folder)`` write the broken inputs
users bring, each of which must be refused with one line naming the file, before anything is
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from domainfm.records import BadInput

from domainfm_graph.io import from_networkx, write_edgelist, write_labels, write_tu
from domainfm_graph.synthetic import activity_task, family_task


def _write(path: Path, data: str | bytes | None) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif data is not None:
        path.write_text(data)
    return path


def _broken_edgelists(folder: Path, good: Path) -> dict[str, Path]:
    """Broken edge lists of every kind, beside ``good`` (whose lines they reuse)."""
    lines = good.read_text().splitlines()
    cases: dict[str, str | bytes | None] = {
        "missing edge list": None,
        "empty edge list": "# airports, one route per line\n\n",
        "truncated edge list": "\n".join(lines[:-1]) + "\n" + lines[-1].split()[0],
        "header line in edge list": "source target\n" + "\n".join(lines) + "\n",
        "edge list not text": bytes(range(256)) * 8,
        "edge list of self-loops": "".join(f"{i} {i}\n" for i in range(12)),
    }
    return {name: _write(folder / (name.replace(" ", "_").replace("-", "_") + ".edgelist"), data)
            for name, data in cases.items()}


# --------------------------------------------------------------------------- pretraining


def pretrain_files(folder: Path) -> dict[str, Any]:
    """Two small real networks as edge lists (no bundled or generated graph)."""
    folder = Path(folder)
    paths = [write_edgelist(from_networkx(nx.les_miserables_graph(), "les"), folder / "les.edgelist"),
             write_edgelist(from_networkx(nx.florentine_families_graph(), "flo"), folder / "flo.edgelist")]
    return {"edgelists": [str(p) for p in paths], "networkx": [], "generated": 0}


def pretrain_bad_inputs(folder: Path) -> list[BadInput]:
    folder = Path(folder)
    good = write_edgelist(from_networkx(nx.karate_club_graph(), "karate"), folder / "karate.edgelist")
    cases = [BadInput(name, expect=path.name,
                      params={"edgelists": [str(good), str(path)], "networkx": [], "generated": 0})
             for name, path in _broken_edgelists(folder, good).items()]
    nothing = {"edgelists": [], "networkx": [], "generated": 0}
    return cases + [BadInput("no graphs at all", expect="data.params.edgelists", params=nothing)]


# --------------------------------------------------------------------------- node classification


def node_files(folder: Path) -> dict[str, Any]:
    """The embedded role task (80 nodes, 4 classes) as an edge list and a label file."""
    folder = Path(folder)
    graph, labels = activity_task(80, seed=0)
    return {"edgelist": str(write_edgelist(graph, folder / "roles.edgelist")),
            "labels": str(write_labels(folder / "roles.labels", graph, labels))}


def node_bad_inputs(folder: Path) -> list[BadInput]:
    folder = Path(folder)
    graph, labels = activity_task(80, seed=0)
    edges = write_edgelist(graph, folder / "roles.edgelist")
    good_labels = write_labels(folder / "roles.labels", graph, labels)
    rows = good_labels.read_text().splitlines()
    cases = [BadInput(name, expect=path.name, params={"edgelist": str(path), "labels": str(good_labels)})
             for name, path in _broken_edgelists(folder, edges).items()]
    label_cases: dict[str, str | bytes | None] = {
        "missing label file": None,
        "empty label file": "node label\n",
        "label file naming absent nodes": "\n".join(rows + ["9001 2", "9002 1"]) + "\n",
        "label line without a label": "\n".join(rows[:10] + [rows[10].split()[0]] + rows[11:]) + "\n",
        "label file not text": b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)) * 4,
        # a class of two nodes cannot be split into the tiny data's 5 folds
        "class with too few nodes": "\n".join(rows[:1] + [
            f"{r.split()[0]} {'rare' if i < 2 else r.split()[1]}" for i, r in enumerate(rows[1:])]) + "\n",
        "a single class": "node label\n" + "".join(f"{n} 0\n" for n in graph.names[:40]),
    }
    for name, data in label_cases.items():
        path = _write(folder / (name.replace(" ", "_") + ".labels"), data)
        cases.append(BadInput(name, expect=path.name, params={"edgelist": str(edges), "labels": str(path)}))
    return cases


# --------------------------------------------------------------------------- graph classification


def graph_files(folder: Path) -> dict[str, Any]:
    """The embedded family task (20 graphs, 4 classes) as a TU folder."""
    graphs, labels = family_task(5, nodes=16, seed=0)
    write_tu(Path(folder) / "FAMILY", "FAMILY", graphs, labels)
    return {"tu_root": str(folder), "tu_name": "FAMILY"}


def graph_bad_inputs(folder: Path) -> list[BadInput]:
    folder = Path(folder)
    graphs, labels = family_task(5, nodes=16, seed=0)
    cases = []

    def tu(name: str, change: dict[str, str | None] | None = None) -> dict[str, Any]:
        root = folder / name.replace(" ", "_")
        write_tu(root / "SET", "SET", graphs, labels)
        for part, text in (change or {}).items():
            path = root / "SET" / f"SET_{part}.txt"
            path.unlink()
            _write(path, text)
        return {"tu_root": str(root), "tu_name": "SET"}

    cases.append(BadInput("TU folder missing", expect="nowhere",
                          params={"tu_root": str(folder / "nowhere"), "tu_name": "SET"}))
    params = tu("TU without graph labels", {"graph_labels": None})
    cases.append(BadInput("TU without graph labels", expect="SET_graph_labels.txt", params=params))
    params = tu("TU folder without A", {"A": None})
    cases.append(BadInput("TU folder without A", expect="SET_A.txt", params=params))
    indicator = (folder / "TU_folder_without_A" / "SET" / "SET_graph_indicator.txt").read_text()
    params = tu("TU edges not numbers", {"A": "1, 2\n2, x\n"})
    cases.append(BadInput("TU edges not numbers", expect="SET_A.txt", params=params))
    params = tu("TU indicator too short", {"graph_indicator": "\n".join(indicator.split()[:30]) + "\n"})
    cases.append(BadInput("TU indicator too short", expect="SET_A.txt", params=params))
    params = tu("TU labels for fewer graphs", {"graph_labels": "0\n1\n"})
    cases.append(BadInput("TU labels for fewer graphs", expect="SET_graph_labels.txt", params=params))
    params = tu("TU empty A", {"A": ""})
    cases.append(BadInput("TU empty A", expect="SET_A.txt", params=params))
    return cases


__all__ = ["graph_bad_inputs", "graph_files", "node_bad_inputs", "node_files",
           "pretrain_bad_inputs", "pretrain_files"]
