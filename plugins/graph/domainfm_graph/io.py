"""Graphs in and out: edge-list and label files, networkx and PyG graphs, one clean CSR form.

Every source is normalised to :class:`Graph`: undirected, no self-loops, no duplicate edges,
nodes numbered ``0..n-1`` with their original ids kept in ``names`` (ids may be any token, not
only integers). Cleaning is counted, not silent: ``Graph.dropped`` says what was removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from domainfm.errors import DomainfmError


class GraphDataError(DomainfmError):
    """A graph or label file that cannot be used as it is."""


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


def read_edgelist(path: str | Path, name: str | None = None) -> Graph:
    """Read a whitespace-separated edge list (``u v [weight...]``; ``#`` starts a comment).

    Node ids are any tokens; self-loops and repeated edges are dropped (and counted).
    """
    path = Path(path)
    if not path.is_file():
        raise GraphDataError(f"edge-list file {str(path)!r} does not exist")
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, comment="#", dtype=str,
                            usecols=[0, 1], names=["u", "v"], skip_blank_lines=True,
                            engine="python" if path.stat().st_size < 1 << 16 else "c")
    except (pd.errors.EmptyDataError, ValueError) as exc:
        raise GraphDataError(f"edge-list file {str(path)!r} cannot be parsed: {exc}") from None
    if frame.empty:
        raise GraphDataError(f"edge-list file {str(path)!r} holds no edges")
    bad = frame["v"].isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise GraphDataError(f"edge-list file {str(path)!r}: edge {row + 1} "
                             f"({frame['u'].iloc[row]!r}) has one node; expected 'u v' per line")
    tokens = frame.to_numpy().astype(str)
    ids = _sorted_ids(tokens.ravel())
    position = {n: i for i, n in enumerate(ids)}
    src = np.fromiter((position[t] for t in tokens[:, 0]), np.int64, len(tokens))
    dst = np.fromiter((position[t] for t in tokens[:, 1]), np.int64, len(tokens))
    return Graph.from_edges(src, dst, len(ids), ids, name or path.stem)


def read_labels(path: str | Path, graph: Graph, *, allow_missing: bool = True) -> np.ndarray:
    """Class of every node of ``graph`` from a ``node label`` file (a header line is optional).

    Labels may be any tokens; they become ``0..C-1`` in sorted order. Nodes the file does not
    name get ``-1`` (unlabelled: kept in the graph, left out of the task) unless
    ``allow_missing`` is False. Ids the graph does not have are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphDataError(f"label file {str(path)!r} does not exist")
    frame = pd.read_csv(path, sep=r"\s+", header=None, comment="#", dtype=str,
                        usecols=[0, 1], names=["node", "label"], engine="python")
    if len(frame) and frame.iloc[0].tolist() == ["node", "label"]:
        frame = frame.iloc[1:]
    if frame.empty or frame["label"].isna().any():
        raise GraphDataError(f"label file {str(path)!r} must hold 'node label' per line")
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
    return labels


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
    from domainfm.io import atomic_path

    rows = np.repeat(np.arange(graph.num_nodes), graph.degree)
    keep = rows < graph.indices
    lines = [f"{graph.names[u]} {graph.names[v]}" for u, v in zip(rows[keep], graph.indices[keep])]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
