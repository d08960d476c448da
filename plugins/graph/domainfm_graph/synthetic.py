"""The embedded default data: networkx's bundled real graphs plus graphs generated from a seed.

Nothing is downloaded. Pretraining uses the four small real social networks networkx ships and
random graphs of several families (preferential attachment, small world, clustered power law,
planted communities), so the encoder sees varied structure. The labelled tasks are structural,
like GCC's downstream tasks: node roles by activity quartile (how US-Airport is labelled) and
graph families (which generator made a graph).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from domainfm_graph.io import Graph, from_networkx

BUNDLED = {
    "karate": nx.karate_club_graph,
    "les_miserables": nx.les_miserables_graph,
    "florentine_families": nx.florentine_families_graph,
    "davis_southern_women": nx.davis_southern_women_graph,
}


def bundled_graphs(names: list[str] | tuple[str, ...] = tuple(BUNDLED)) -> list[Graph]:
    """networkx's bundled real graphs by name."""
    unknown = [n for n in names if n not in BUNDLED]
    if unknown:
        from domainfm.errors import ConfigError

        raise ConfigError(f"unknown networkx graph(s) {unknown}; choose from {sorted(BUNDLED)}")
    return [from_networkx(BUNDLED[n](), n) for n in names]


def _family(kind: int, n: int, seed: int) -> nx.Graph:
    if kind == 0:
        return nx.barabasi_albert_graph(n, 3, seed=seed)
    if kind == 1:
        return nx.watts_strogatz_graph(n, 6, 0.1, seed=seed)
    if kind == 2:
        return nx.powerlaw_cluster_graph(n, 3, 0.5, seed=seed)
    sizes = [n // 4] * 3 + [n - 3 * (n // 4)]
    return nx.stochastic_block_model(sizes, np.where(np.eye(4) > 0, 0.15, 0.01).tolist(), seed=seed)


def generated_graphs(count: int, *, nodes: int = 200, seed: int = 0) -> list[Graph]:
    """``count`` random graphs cycling through four families, sizes around ``nodes``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n = int(rng.integers(nodes // 2, nodes * 3 // 2 + 1))
        out.append(from_networkx(_family(i % 4, n, int(rng.integers(1 << 31))), f"generated_{i}"))
    return out


def activity_task(nodes: int = 300, *, seed: int = 0) -> tuple[Graph, np.ndarray]:
    """A heavy-tailed graph whose node labels are degree quartiles (4 classes), like US-Airport."""
    g = from_networkx(nx.powerlaw_cluster_graph(nodes, 3, 0.3, seed=seed), "activity")
    ranks = np.argsort(np.argsort(g.degree + np.random.default_rng(seed).random(nodes)))
    return g, (4 * ranks // nodes).astype(np.int64)


def family_task(per_class: int = 30, *, nodes: int = 30, seed: int = 0) -> tuple[list[Graph], np.ndarray]:
    """Small graphs labelled by the family that generated them (4 classes)."""
    rng = np.random.default_rng(seed)
    graphs, labels = [], []
    for i in range(per_class * 4):
        n = int(rng.integers(nodes * 2 // 3, nodes * 4 // 3 + 1))
        graphs.append(from_networkx(_family(i % 4, n, int(rng.integers(1 << 31))), f"family_{i}"))
        labels.append(i % 4)
    return graphs, np.array(labels, dtype=np.int64)
