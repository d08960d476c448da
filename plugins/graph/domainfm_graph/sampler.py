"""GCC's instance sampler, vectorised over a whole batch.

An instance is an r-ego subgraph around a seed node: random walks with restart (restart
probability 0.8) from the seed until ``max(rw_hops, deg * e / (e - 1) / restart)`` steps were
taken, as THUDM/GCC does with DGL; the view is the subgraph induced on the visited nodes, seed
first. Two views are two independent walks. Node features are GCC's: the top
``k = min(n - 2, 32)`` eigenvectors of ``D^-1/2 A D^-1/2`` in ascending order of eigenvalue (the
order scipy's ``eigsh(which="LA")`` returns them in GCC, so weights trained there read the same
columns), rows L2-normalised, zero-padded to 32; the node's degree inside the view (the encoder
embeds it) and a seed bit.

Speed comes from doing every step for all views of a batch at once: the walks are numpy
operations over CSR arrays, the eigenvectors come from one ``torch.linalg.eigh`` per group
of similarly sized views, stacked as padded dense matrices, and the sign flips, truncation and
normalisation run once over all nodes. Padding rows get ``-2`` on the diagonal, below every
eigenvalue of a normalised adjacency (which lie in ``[-1, 1]``), so the top eigenvectors are
never the padding's. Memory is bounded by the graphs' CSR arrays (plus a
dense bit matrix for graphs under ``dense_max_nodes``) and one batch: nothing accumulates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from domainfm_graph.io import Graph
from domainfm_graph.pyg import Batch, Data

PAD_EIGENVALUE = -2.0


class GraphCollection:
    """Several graphs as one disjoint union, so that a batch can mix them."""

    def __init__(self, graphs: Sequence[Graph], dense_max_nodes: int = 4096,
                 dense_budget_mb: int = 256) -> None:
        if not graphs:
            raise ValueError("a GraphCollection needs at least one graph")
        self.graphs = list(graphs)
        sizes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.indptr = np.concatenate(
            [[0]] + [g.indptr[1:] + e for g, e in
                     zip(graphs, np.cumsum([0] + [len(g.indices) for g in graphs[:-1]]))])
        self.indices = np.concatenate([g.indices + o for g, o in zip(graphs, self.offsets)])
        self.degree = np.diff(self.indptr)
        self.graph_of = np.repeat(np.arange(len(graphs)), sizes)
        # dense bit matrices make induced subgraphs a single gather; cap their total memory
        budget, self._dense = dense_budget_mb << 20, []
        for g in graphs:
            fits = g.num_nodes <= dense_max_nodes and (g.num_nodes + 1) ** 2 <= budget
            self._dense.append(_dense_bits(g) if fits else None)
            budget -= (g.num_nodes + 1) ** 2 if fits else 0

    @property
    def num_nodes(self) -> int:
        return int(self.offsets[-1])

    def seed_weights(self, power: float = 0.75) -> np.ndarray:
        """GCC's seed distribution: a graph in proportion to its size, then degree^0.75."""
        w = self.degree.astype(np.float64) ** power
        per_graph = np.bincount(self.graph_of, weights=w, minlength=len(self.graphs))
        sizes = np.diff(self.offsets).astype(np.float64)
        scale = np.divide(sizes, per_graph, out=np.zeros_like(sizes), where=per_graph > 0)
        w = w * scale[self.graph_of]
        if w.sum() == 0:
            raise ValueError("no graph in the collection has an edge to start a walk from")
        return w / w.sum()

    def adjacencies(self, views: Sequence[np.ndarray], size: int) -> np.ndarray:
        """``(len(views), size, size)`` 0/1 adjacencies induced on each view's global nodes
        (each view in one graph), zero-padded: one gather per graph held as a dense matrix."""
        out = np.zeros((len(views), size, size), dtype=bool)
        graph_of = self.graph_of[[int(v[0]) for v in views]]
        for g in np.unique(graph_of):
            rows = np.flatnonzero(graph_of == g)
            dense = self._dense[g]
            if dense is None:
                for r in rows:
                    n = len(views[r])
                    out[r, :n, :n] = self.adjacency(views[r])
                continue
            lengths = np.array([len(views[r]) for r in rows])
            index = np.full((len(rows), size), len(dense) - 1)  # the dense matrix's zero row
            column = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            index[np.repeat(np.arange(len(rows)), lengths), column] = \
                np.concatenate([views[r] for r in rows]) - self.offsets[g]
            flat = index[:, :, None] * len(dense) + index[:, None, :]
            out[rows] = np.take(dense.reshape(-1), flat)
        return out

    def adjacency(self, nodes: np.ndarray) -> np.ndarray:
        """Dense 0/1 adjacency induced on global ``nodes`` (all in one graph)."""
        g = int(self.graph_of[nodes[0]])
        local = nodes - self.offsets[g]
        dense = self._dense[g]
        if dense is not None:
            return dense[np.ix_(local, local)]
        # large graphs: each view node's neighbour list, kept where the neighbour is in the view
        graph = self.graphs[g]
        starts, counts = graph.indptr[local], graph.degree[local]
        total = int(counts.sum())
        flat = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        neighbours = graph.indices[flat]
        rows = np.repeat(np.arange(len(local)), counts)
        order = np.argsort(local)
        where = np.minimum(np.searchsorted(local[order], neighbours), len(local) - 1)
        inside = local[order][where] == neighbours
        out = np.zeros((len(local), len(local)), dtype=bool)
        out[rows[inside], order[where[inside]]] = True
        return out


def _dense_bits(graph: Graph) -> np.ndarray:
    """The adjacency as a bit matrix, plus a last row and column of zeros that padding reads."""
    dense = np.zeros((graph.num_nodes + 1, graph.num_nodes + 1), dtype=bool)
    dense[np.repeat(np.arange(graph.num_nodes), graph.degree), graph.indices] = True
    return dense


def walk_budget(degree: np.ndarray, rw_hops: int, restart_prob: float) -> np.ndarray:
    """Steps per seed, as GCC: enough for a hub's neighbourhood to be covered."""
    hub = (degree * math.e / (math.e - 1) / restart_prob + 0.5).astype(np.int64)
    return np.maximum(rw_hops, hub)


def random_walk_with_restart(indptr: np.ndarray, indices: np.ndarray, seeds: np.ndarray,
                             budgets: np.ndarray, restart_prob: float,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Visits ``(view, node)`` of traces from each seed until its budget of steps is spent.

    A trace starts at its seed, moves to a uniform neighbour, and ends after each step with
    probability ``restart_prob`` (or at a node without neighbours). Traces are generated in
    parallel for every seed; per seed, traces are kept in order while fewer than ``budget``
    steps were taken before them, which is DGL's stopping rule.
    """
    degree = np.diff(indptr)
    views = len(seeds)
    # expected steps per trace is 1 / restart_prob: draw a margin of traces, cut exactly below
    traces = np.ceil(budgets * restart_prob * 1.3 + 16).astype(np.int64)
    walker_view = np.repeat(np.arange(views), traces)
    position = seeds[walker_view].copy()
    alive = np.flatnonzero(degree[position] > 0)
    walkers, nodes = [], []
    while alive.size:
        current = position[alive]
        step = indices[indptr[current] + (rng.random(alive.size) * degree[current]).astype(np.int64)]
        position[alive] = step
        walkers.append(alive)
        nodes.append(step)
        keep = (rng.random(alive.size) >= restart_prob) & (degree[step] > 0)
        alive = alive[keep]
    if not walkers:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    walker = np.concatenate(walkers)
    node = np.concatenate(nodes)
    length = np.bincount(walker, minlength=len(walker_view))
    first = np.concatenate([[0], np.cumsum(traces)[:-1]])
    before = np.cumsum(length) - length  # steps before each trace, counted per view below
    before -= (np.cumsum(length) - length)[first][walker_view]
    kept = before[walker] < budgets[walker_view[walker]]
    return walker_view[walker[kept]], node[kept]


def ego_views(collection: GraphCollection, seeds: np.ndarray, rng: np.random.Generator, *,
              rw_hops: int = 256, restart_prob: float = 0.8) -> list[np.ndarray]:
    """One RWR view per seed: global node ids of the visited set, seed first, then sorted."""
    seeds = np.asarray(seeds, dtype=np.int64)
    budgets = walk_budget(collection.degree[seeds], rw_hops, restart_prob)
    view, node = random_walk_with_restart(collection.indptr, collection.indices, seeds,
                                          budgets, restart_prob, rng)
    stride = collection.num_nodes + 1
    is_seed = node == seeds[view]
    keys = np.concatenate([np.arange(len(seeds)) * stride,  # the seed sorts first in its view
                           view * stride + np.where(is_seed, 0, node + 1)])
    keys = np.unique(keys)
    owner, local = keys // stride, keys % stride - 1
    local[local < 0] = seeds[owner[local < 0]]
    return np.split(local, np.cumsum(np.bincount(owner, minlength=len(seeds)))[:-1])


def whole_graph_views(collection: GraphCollection, graph_ids: np.ndarray) -> list[np.ndarray]:
    """A graph-level instance is the whole graph, its highest-degree node first as the seed."""
    out = []
    for g in np.asarray(graph_ids, dtype=np.int64):
        lo, hi = collection.offsets[g], collection.offsets[g + 1]
        nodes = np.arange(lo, hi)
        seed = lo + int(np.argmax(collection.degree[lo:hi])) if hi > lo else lo
        out.append(np.concatenate([[seed], nodes[nodes != seed]]))
    return out


def featurize(collection: GraphCollection, views: Sequence[np.ndarray], rng: np.random.Generator,
              *, pos_dim: int = 32, max_degree: int = 512, bucket: int = 8, parts: int = 1) -> list[Batch]:
    """PyG ``Batch``es of the views with GCC's features: ``parts`` of them, of consecutive views.

    ``x``: ``(N, pos_dim)`` eigenvector features; ``degree``: ``(N,)`` degree inside the view
    (clamped at ``max_degree``); ``seed``: ``(N,)`` 1 at each view's seed; ``edge_index``;
    ``batch``/``ptr``. Eigenvector signs are arbitrary, so each is flipped at random from ``rng``:
    the same seed gives the same features. Only the adjacency and the eigendecomposition run per
    group of views padded to the same size (a multiple of ``bucket``), and the groups span all
    parts (both views of a pretraining batch share them); the rest runs once.
    """
    sizes = np.array([len(v) for v in views], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    bounds = np.linspace(0, len(views), parts + 1).astype(np.int64)  # views of each part
    x = torch.zeros(int(starts[-1]), pos_dim)
    degree = torch.zeros(int(starts[-1]), dtype=torch.long)
    edges: list[list[np.ndarray]] = [[np.zeros((2, 0), dtype=np.int64)] for _ in range(parts)]
    padded = -(-sizes // bucket) * bucket
    for size in np.unique(padded):
        members = np.flatnonzero(padded == size)
        bits = collection.adjacencies([views[v] for v in members], int(size))
        b, ij = np.divmod(np.flatnonzero(bits), size * size)  # 2x faster than a 3D nonzero
        found = np.stack(np.divmod(ij, size)) + starts[members][b]
        cuts = np.searchsorted(members[b], bounds)  # edges come in view order within a group
        for part in range(parts):
            edges[part].append(found[:, cuts[part]:cuts[part + 1]])
        a = torch.from_numpy(bits).float()
        real = torch.arange(size) < torch.from_numpy(sizes[members])[:, None]  # (b, size)
        deg = a.sum(-1)
        inv_sqrt = deg.clamp(min=1).rsqrt()
        lap = inv_sqrt[:, :, None] * a * inv_sqrt[:, None, :]
        lap.diagonal(dim1=-2, dim2=-1).masked_fill_(~real, PAD_EIGENVALUE)
        vectors = torch.linalg.eigh(lap)[1]  # ascending eigenvalues, the padding's first
        # GCC's layout: column j < k holds the eigenvector of the (k - j)-th largest eigenvalue,
        # i.e. the top k in ascending order (as scipy's eigsh returns them); the rest is masked
        width = min(pos_dim, size)
        k = torch.from_numpy(sizes[members] - 2).clamp(0, pos_dim)
        column = (size - k[:, None] + torch.arange(width)).clamp(max=size - 1)
        top = torch.gather(vectors, 2, column[:, None, :].expand(-1, size, -1))
        flat = (torch.from_numpy(starts[members])[:, None] + torch.arange(size))[real]
        x[flat, :width] = top[real]
        degree[flat] = deg[real].long()
    view = torch.repeat_interleave(torch.arange(len(views)), torch.from_numpy(sizes))
    k = torch.from_numpy(sizes - 2).clamp(0, pos_dim)[view]  # as GCC (ARPACK needs k < n - 1)
    signs = torch.from_numpy(rng.choice(np.array([-1.0, 1.0], np.float32),
                                        size=(len(views), pos_dim)))
    x = F.normalize(x * signs[view] * (torch.arange(pos_dim) < k[:, None]), p=2, dim=-1)
    seed = torch.zeros(len(x))
    seed[torch.from_numpy(starts[:-1])] = 1.0
    degree.clamp_(max=max_degree)
    out = []
    for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        first, last = int(starts[lo]), int(starts[hi])
        out.append(Batch(x=x[first:last], degree=degree[first:last], seed=seed[first:last],
                         edge_index=torch.from_numpy(np.concatenate(edges[part], 1) - first),
                         batch=view[first:last] - int(lo),
                         ptr=torch.from_numpy(starts[lo:hi + 1] - first), num_nodes=last - first))
    return out


def split_views(batch: Batch) -> list[Data]:
    """The views of a :func:`featurize` batch as separate ``Data`` (to cache and re-batch them
    with ``Batch.from_data_list``)."""
    order = torch.argsort(batch.edge_index[0], stable=True)
    edges = batch.edge_index[:, order]
    ptr = batch.ptr
    cuts = torch.searchsorted(edges[0].contiguous(), ptr)
    out = []
    for v in range(len(ptr) - 1):
        lo, hi = int(ptr[v]), int(ptr[v + 1])
        out.append(Data(x=batch.x[lo:hi], degree=batch.degree[lo:hi], seed=batch.seed[lo:hi],
                        edge_index=edges[:, cuts[v]:cuts[v + 1]] - lo, num_nodes=hi - lo))
    return out
