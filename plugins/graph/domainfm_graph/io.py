"""Graphs in and out: edge-list, label and TU files, networkx and PyG graphs, one clean CSR form.

Every source is normalised to :class:`Graph`: undirected, no self-loops, no duplicate edges,
nodes numbered ``0..n-1`` with their original ids kept in ``names`` (ids may be any token, not
only integers). Cleaning is counted, not silent: ``Graph.dropped`` says what was removed.

Every reader error is a :class:`GraphDataError` (a :class:`~domainfm.errors.DataError`) whose
one-line message names the file and what was expected, never a pandas or numpy traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from domainfm.errors import DataError
from domainfm.io import atomic_path

_INTEGER = re.compile(r"[+-]?\d+")


class GraphDataError(DataError):
    """A graph, label or TU file that cannot be used as it is."""


@dataclass(frozen=True, eq=False)
class Graph:
    """An undirected simple graph in CSR form (``indices[indptr[u]:indptr[u+1]]`` = neighbours)."""

    indptr: np.ndarray
    indices: np.ndarray
    names: np.ndarray
    name: str = "graph"
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return len(self.indptr) - 1

    @property
    def num_edges(self) -> int:
        """Undirected edges."""
        return len(self.indices) // 2

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def neighbours(self, node: int) -> np.ndarray:
        return self.indices[self.indptr[node]:self.indptr[node + 1]]

    def index_of(self, names: Any) -> np.ndarray:
        """Positions of original node ids (as strings or ints); unknown ids raise."""
        lookup = {str(n): i for i, n in enumerate(self.names)}
        wanted = [str(n) for n in np.atleast_1d(names)]
        missing = [n for n in wanted if n not in lookup]
        if missing:
            raise GraphDataError(f"graph {self.name!r} has no node(s) {missing[:5]}"
                                 f"{' ...' if len(missing) > 5 else ''}")
        return np.array([lookup[n] for n in wanted], dtype=np.int64)

    @classmethod
    def from_edges(cls, src: np.ndarray, dst: np.ndarray, num_nodes: int,
                   names: np.ndarray | None = None, name: str = "graph") -> Graph:
        """Symmetrise, drop self-loops and duplicates, and sort into CSR."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        loops = src == dst
        src, dst = src[~loops], dst[~loops]
        both = np.concatenate([src * num_nodes + dst, dst * num_nodes + src])
        keys = np.unique(both)
        duplicates = len(src) - len(keys) // 2
        rows, cols = keys // num_nodes, keys % num_nodes
        indptr = np.zeros(num_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=num_nodes), out=indptr[1:])
        names = np.arange(num_nodes) if names is None else np.asarray(names)
        dropped = {"self_loops": int(loops.sum()), "duplicate_edges": int(duplicates)}
        return cls(indptr, cols.astype(np.int64), names, name, dropped)

    def to_edge_index(self) -> np.ndarray:
        """``(2, 2E)`` both directions, as PyG stores undirected graphs."""
        rows = np.repeat(np.arange(self.num_nodes), self.degree)
        return np.stack([rows, self.indices])


def _sorted_ids(tokens: np.ndarray) -> np.ndarray:
    """Unique node ids, numerically sorted when they are all integers, else as strings."""
    unique = pd.unique(tokens)
    try:
        as_int = unique.astype(np.int64)
        if np.array_equal(as_int.astype(str), unique.astype(str)):
            return as_int[np.argsort(as_int)].astype(str)
    except ValueError:
        pass
    return np.sort(unique.astype(str))


def _read_columns(path: Path, what: str, names: list[str]) -> pd.DataFrame:
    """The first two whitespace-separated columns of a text file, as strings."""
    try:
        return pd.read_csv(path, sep=r"\s+", header=None, comment="#", dtype=str, usecols=[0, 1],
                           names=names, skip_blank_lines=True,
                           engine="python" if path.stat().st_size < 1 << 16 else "c")
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=names)
    except UnicodeDecodeError:
        raise GraphDataError(f"{what} {str(path)!r} is not a text file (expected "
                             f"'{' '.join(names)}' per line)") from None
    except (ValueError, OSError) as exc:  # pandas' ParserError is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphDataError(f"{what} {str(path)!r} cannot be parsed: {first}") from None


def read_edgelist(path: str | Path, name: str | None = None) -> Graph:
    """Read a whitespace-separated edge list (``u v [weight...]``; ``#`` starts a comment).

    Node ids are any tokens; self-loops and repeated edges are dropped (and counted). A file
    with no edge (empty, comments only, or only self-loops), a line with one node, or a header
    line above integer ids is an error naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphDataError(f"edge-list file {str(path)!r} does not exist")
    frame = _read_columns(path, "edge-list file", ["u", "v"])
    if frame.empty:
        raise GraphDataError(f"edge-list file {str(path)!r} holds no edges (expected 'u v' per line)")
    bad = frame["v"].isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise GraphDataError(f"edge-list file {str(path)!r}: edge {row + 1} "
                             f"({frame['u'].iloc[row]!r}) has one node; expected 'u v' per line "
                             "(is the file truncated?)")
    tokens = frame.to_numpy().astype(str)
    integer = lambda rows: all(_INTEGER.fullmatch(t) for t in rows.ravel())  # noqa: E731
    if len(tokens) > 1 and not integer(tokens[:1]) and integer(tokens[1:]):
        raise GraphDataError(f"edge-list file {str(path)!r}: the first line "
                             f"({' '.join(tokens[0])!r}) is not two integer node ids like the "
                             "others; is it a header? Start it with '#'")
    ids = _sorted_ids(tokens.ravel())
    position = {n: i for i, n in enumerate(ids)}
    src = np.fromiter((position[t] for t in tokens[:, 0]), np.int64, len(tokens))
    dst = np.fromiter((position[t] for t in tokens[:, 1]), np.int64, len(tokens))
    graph = Graph.from_edges(src, dst, len(ids), ids, name or path.stem)
    if graph.num_edges == 0:
        raise GraphDataError(f"edge-list file {str(path)!r} holds only self-loops "
                             f"({graph.dropped['self_loops']}): no edge between two nodes is left")
    return graph


def read_node_labels(path: str | Path, graph: Graph, *,
                     allow_missing: bool = True) -> tuple[np.ndarray, list[str]]:
    """``(class of every node of graph, class names)`` from a ``node label`` file.

    A ``node label`` header line is optional. Labels may be any tokens; they become
    ``0..C-1`` in sorted order (numerically when they are integers) and the names list keeps
    them. Nodes the file does not name get ``-1`` (unlabelled: kept in the graph, left out of
    the task) unless ``allow_missing`` is False. Ids the graph does not have are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphDataError(f"label file {str(path)!r} does not exist")
    frame = _read_columns(path, "label file", ["node", "label"])
    if len(frame) and frame.iloc[0].tolist() == ["node", "label"]:
        frame = frame.iloc[1:]
    if frame.empty or frame["label"].isna().any():
        row = int(np.flatnonzero(frame["label"].isna().to_numpy())[0]) if len(frame) else None
        where = f" (node {frame['node'].iloc[row]!r} has no label)" if row is not None else ""
        raise GraphDataError(f"label file {str(path)!r} must hold 'node label' per line{where}")
    names = {str(n): i for i, n in enumerate(graph.names)}
    unknown = [n for n in frame["node"] if n not in names]
    if unknown:
        raise GraphDataError(
            f"label file {str(path)!r} names {len(unknown)} node(s) absent from graph "
            f"{graph.name!r}: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    repeated = frame["node"][frame["node"].duplicated()].tolist()
    if repeated:
        raise GraphDataError(f"label file {str(path)!r} labels node(s) {repeated[:5]} twice")
    classes = _sorted_ids(frame["label"].to_numpy().astype(str))
    code = {c: i for i, c in enumerate(classes)}
    labels = np.full(graph.num_nodes, -1, dtype=np.int64)
    labels[[names[n] for n in frame["node"]]] = [code[c] for c in frame["label"]]
    missing = int((labels < 0).sum())
    if missing and not allow_missing:
        absent = graph.names[labels < 0][:5].tolist()
        raise GraphDataError(f"label file {str(path)!r} has no label for {missing} node(s) of "
                             f"graph {graph.name!r}, e.g. {absent}")
    return labels, [str(c) for c in classes]


def read_labels(path: str | Path, graph: Graph, *, allow_missing: bool = True) -> np.ndarray:
    """Class of every node of ``graph`` (``-1`` where unlabelled); see :func:`read_node_labels`."""
    return read_node_labels(path, graph, allow_missing=allow_missing)[0]


def write_labels(path: str | Path, graph: Graph, labels: np.ndarray) -> Path:
    """A ``node label`` file for the labelled (``>= 0``) nodes of ``graph``."""
    keep = np.flatnonzero(np.asarray(labels) >= 0)
    lines = ["node label"] + [f"{graph.names[i]} {labels[i]}" for i in keep]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def from_networkx(g: Any, name: str = "graph") -> Graph:
    """A networkx graph (directions, weights and multi-edges are dropped)."""
    nodes = list(g.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    edges = np.array([(position[u], position[v]) for u, v in g.edges()], dtype=np.int64)
    edges = edges.reshape(-1, 2)
    return Graph.from_edges(edges[:, 0], edges[:, 1], len(nodes),
                            np.array([str(n) for n in nodes]), name)


def from_pyg(data: Any, name: str = "graph") -> Graph:
    """A ``torch_geometric.data.Data`` (its ``edge_index``; features are not used by GCC)."""
    edge_index = data.edge_index.cpu().numpy()
    return Graph.from_edges(edge_index[0], edge_index[1], int(data.num_nodes), name=name)


def write_edgelist(graph: Graph, path: str | Path) -> Path:
    """Each undirected edge once, as ``u v`` with the original ids."""
    rows = np.repeat(np.arange(graph.num_nodes), graph.degree)
    keep = rows < graph.indices
    lines = [f"{graph.names[u]} {graph.names[v]}" for u, v in zip(rows[keep], graph.indices[keep])]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


# --------------------------------------------------------------------------- TU datasets

TU_FILES = ("A", "graph_indicator", "graph_labels")


def tu_folder(root: str | Path, name: str) -> Path:
    """Where the TU files of ``name`` are: ``root/name/raw`` (PyG's ``TUDataset`` layout) or
    ``root/name`` (the benchmark's own zip, unpacked)."""
    base = Path(root) / name
    for folder in (base / "raw", base):
        if (folder / f"{name}_A.txt").is_file():
            return folder
    if not base.is_dir():
        raise GraphDataError(f"TU dataset {name!r} not found under {str(base)!r} (expected the "
                             f"folder holding {name}_A.txt, {name}_graph_indicator.txt and "
                             f"{name}_graph_labels.txt, or its raw/ folder)")
    raise GraphDataError(f"TU folder {str(base)!r} has no {name}_A.txt (expected "
                         f"{', '.join(f'{name}_{f}.txt' for f in TU_FILES)} there or in raw/)")


def _tu_column(path: Path, columns: int) -> np.ndarray:
    if not path.is_file():
        raise GraphDataError(f"TU file {str(path)!r} does not exist (a TU dataset needs "
                             f"{', '.join(TU_FILES)} files)")
    try:
        frame = pd.read_csv(path, header=None, sep=r"\s*,\s*", engine="python", dtype=str)
    except pd.errors.EmptyDataError:
        raise GraphDataError(f"TU file {str(path)!r} is empty") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise GraphDataError(f"TU file {str(path)!r} cannot be parsed "
                             f"({str(exc).strip().splitlines()[0]})") from None
    if frame.shape[1] < columns or frame.iloc[:, :columns].isna().any().any():
        raise GraphDataError(f"TU file {str(path)!r}: expected {columns} comma-separated "
                             f"integer(s) per line")
    values = frame.iloc[:, :columns].to_numpy().astype(str)
    integer = np.vectorize(lambda t: bool(_INTEGER.fullmatch(t.strip())), otypes=[bool])(values)
    if not integer.all():
        row = int(np.argwhere(~integer)[0][0])
        raise GraphDataError(f"TU file {str(path)!r}: line {row + 1} ({', '.join(values[row])!r}) "
                             "is not integers")
    return values.astype(np.int64)


def read_tu(root: str | Path, name: str) -> tuple[list[Graph], np.ndarray, list[str]]:
    """``(graphs, labels 0..C-1, class names)`` of a TU benchmark already on disk.

    Reads the structure GCC uses (``NAME_A.txt``: 1-based ``u, v`` edges over all graphs;
    ``NAME_graph_indicator.txt``: the graph of each node; ``NAME_graph_labels.txt``: one label
    per graph) and nothing else; nothing is downloaded or written (PyG's ``TUDataset`` would
    write a processed/ cache beside the files).
    """
    folder = tu_folder(root, name)
    path = lambda part: folder / f"{name}_{part}.txt"  # noqa: E731
    edges = _tu_column(path("A"), 2)
    graph_of = _tu_column(path("graph_indicator"), 1)[:, 0]
    raw_labels = _tu_column(path("graph_labels"), 1)[:, 0]
    n, count = len(graph_of), len(raw_labels)
    outside = edges[(edges < 1) | (edges > n)]
    if outside.size:
        raise GraphDataError(f"TU file {str(path('A'))!r} names node {int(outside[0])} but "
                             f"{path('graph_indicator').name} has {n} nodes (ids are 1..{n})")
    steps = np.diff(graph_of)
    if graph_of[0] != 1 or (steps < 0).any() or (steps > 1).any():
        raise GraphDataError(f"TU file {str(path('graph_indicator'))!r} must number the graphs "
                             "1, 2, ... in order, without gaps")
    if graph_of[-1] != count:
        raise GraphDataError(f"TU file {str(path('graph_labels'))!r} has {count} labels but "
                             f"{path('graph_indicator').name} has {int(graph_of[-1])} graphs")
    graph_of -= 1
    src, dst = edges[:, 0] - 1, edges[:, 1] - 1
    if (graph_of[src] != graph_of[dst]).any():
        row = int(np.flatnonzero(graph_of[src] != graph_of[dst])[0])
        raise GraphDataError(f"TU file {str(path('A'))!r}: edge {row + 1} joins two graphs")
    starts = np.searchsorted(graph_of, np.arange(count + 1))
    order = np.argsort(graph_of[src], kind="stable")
    cuts = np.searchsorted(graph_of[src][order], np.arange(count + 1))
    graphs = []
    for g in range(count):
        lo = starts[g]
        e = order[cuts[g]:cuts[g + 1]]
        graphs.append(Graph.from_edges(src[e] - lo, dst[e] - lo, int(starts[g + 1] - lo),
                                       name=f"{name}_{g}"))
    classes, labels = np.unique(raw_labels, return_inverse=True)
    return graphs, labels.astype(np.int64), [str(c) for c in classes]


def write_tu(folder: str | Path, name: str, graphs: Sequence[Graph], labels: np.ndarray) -> Path:
    """The TU files of ``graphs`` (``A``, ``graph_indicator``, ``graph_labels``) in ``folder``."""
    folder = Path(folder)
    offsets = np.concatenate([[0], np.cumsum([g.num_nodes for g in graphs])])
    rows = [f"{u + o + 1}, {v + o + 1}" for g, o in zip(graphs, offsets)
            for u, v in g.to_edge_index().T]
    indicator = [str(i + 1) for i, g in enumerate(graphs) for _ in range(g.num_nodes)]
    for part, lines in {"A": rows, "graph_indicator": indicator,
                        "graph_labels": [str(int(v)) for v in labels]}.items():
        with atomic_path(folder / f"{name}_{part}.txt") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    return folder
