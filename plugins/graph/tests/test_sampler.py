"""The GCC sampler: walks, induced views and eigenvector features, checked against definitions."""

from __future__ import annotations

import networkx as nx
import numpy as np
import torch

from domainfm_graph.io import Graph, from_networkx
from domainfm_graph.sampler import (
    GraphCollection,
    ego_views,
    featurize,
    random_walk_with_restart,
    split_views,
    walk_budget,
    whole_graph_views,
)


def two_components() -> GraphCollection:
    """A karate club plus a separate 5-cycle, a self-loop-free graph with an isolated node."""
    g = nx.disjoint_union(nx.karate_club_graph(), nx.cycle_graph(5))
    g.add_node(39)
    return GraphCollection([from_networkx(g, "parts")])


def test_walk_budget_and_traces_stop_after_it():
    c = GraphCollection([from_networkx(nx.star_graph(300))])
    budgets = walk_budget(c.degree[[0, 1]], rw_hops=64, restart_prob=0.8)
    assert budgets.tolist() == [int(300 * np.e / (np.e - 1) / 0.8 + 0.5), 64]
    rng = np.random.default_rng(0)
    view, node = random_walk_with_restart(c.indptr, c.indices, np.array([0, 1]), budgets, 0.8, rng)
    steps = np.bincount(view, minlength=2)
    assert (steps >= budgets).all() and (steps < budgets + 40).all()  # last trace kept whole


def test_views_start_at_seed_and_stay_in_its_component():
    c = two_components()
    rng = np.random.default_rng(0)
    seeds = np.array([0, 34, 39])  # karate hub, a cycle node, the isolated node
    views = ego_views(c, seeds, rng, rw_hops=64)
    assert [v[0] for v in views] == seeds.tolist()
    assert set(views[0]) <= set(range(34)) and len(views[0]) > 10
    assert set(views[1]) <= set(range(34, 39)) and len(views[1]) >= 3
    assert views[2].tolist() == [39]
    assert all(len(np.unique(v)) == len(v) for v in views)


def test_features_match_the_definition():
    c = GraphCollection([from_networkx(nx.karate_club_graph())])
    rng = np.random.default_rng(1)
    views = ego_views(c, np.array([0, 5, 33]), rng, rw_hops=64)
    (batch,) = featurize(c, views, rng, pos_dim=32)
    for data, nodes in zip(split_views(batch), views):
        n = len(nodes)
        a = c.adjacency(nodes).astype(np.float64)
        assert torch.equal(data.degree, torch.as_tensor(a.sum(1)).long())
        assert data.seed.tolist() == [1.0] + [0.0] * (n - 1)
        dense = np.zeros((n, n))
        dense[data.edge_index[0].numpy(), data.edge_index[1].numpy()] = 1
        assert np.array_equal(dense, a)
        d = np.maximum(a.sum(1), 1) ** -0.5
        values, vectors = np.linalg.eigh(d[:, None] * a * d[None, :])
        k = min(n - 2, 32)
        top = vectors[:, ::-1][:, :k]
        x = data.x.numpy().astype(np.float64)
        assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
        assert (x[:, k:] == 0).all()
        # same span as the top-k eigenvectors (signs and degenerate rotations are arbitrary)
        norms = np.linalg.norm(top, axis=1, keepdims=True)
        projector = top @ top.T
        unnormalised = x * norms
        assert np.allclose(projector @ unnormalised, unnormalised, atol=1e-4)


def test_small_and_isolated_views_are_zero_padded_and_finite():
    c = two_components()
    rng = np.random.default_rng(0)
    (batch,) = featurize(c, [np.arange(34, 39), np.array([39])], rng)
    cycle, isolated = split_views(batch)
    assert cycle.num_nodes == 5 and (cycle.x[:, 3:] == 0).all()  # k = n - 2 = 3
    assert (cycle.x[:, :3] != 0).any(dim=0).all()
    assert torch.allclose(cycle.x.norm(dim=1), torch.ones(5), atol=1e-5)
    assert isolated.num_nodes == 1 and isolated.edge_index.shape == (2, 0)
    assert torch.isfinite(batch.x).all() and (isolated.x == 0).all()


def test_features_are_reproducible_from_the_seed():
    c = two_components()
    make = lambda s: featurize(c, ego_views(c, np.array([0, 2]), np.random.default_rng(s)),  # noqa: E731
                               np.random.default_rng(s))[0]
    a, b, other = make(3), make(3), make(4)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    assert not torch.equal(a.x, other.x) if a.x.shape == other.x.shape else True


def test_seed_distribution_follows_degree_power():
    g = from_networkx(nx.star_graph(8))  # hub degree 8, leaves degree 1
    w = GraphCollection([g]).seed_weights()
    assert np.isclose(w[0] / w[1], 8 ** 0.75)
    # graphs are chosen in proportion to their size, nodes by degree^0.75 within a graph
    two = GraphCollection([g, from_networkx(nx.path_graph(3))])
    w = two.seed_weights()
    assert np.isclose(w[:9].sum() / w[9:].sum(), 9 / 3)


def test_whole_graph_instance_puts_highest_degree_first():
    graphs = [from_networkx(nx.star_graph(4)), from_networkx(nx.path_graph(3))]
    c = GraphCollection(graphs)
    first, second = whole_graph_views(c, np.array([0, 1]))
    assert first[0] == 0 and sorted(first) == list(range(5))
    assert second[0] == 6 and sorted(second) == [5, 6, 7]


def test_large_graph_sparse_fallback_agrees_with_dense():
    g = from_networkx(nx.barabasi_albert_graph(120, 3, seed=0))
    dense, sparse = GraphCollection([g]), GraphCollection([g], dense_max_nodes=10)
    nodes = np.array([5, 0, 17, 3, 99])
    assert np.array_equal(dense.adjacency(nodes), sparse.adjacency(nodes))


def test_adjacencies_of_a_size_group_are_each_views_zero_padded():
    """One gather per graph held densely (the sampler's per-group path), the sparse fallback
    per view, in a collection that mixes both: the same bits as one view at a time."""
    big = from_networkx(nx.barabasi_albert_graph(120, 3, seed=0))
    small = from_networkx(nx.karate_club_graph())
    c = GraphCollection([big, small], dense_max_nodes=100)  # `big` takes the sparse path
    views = [np.array([5, 0, 17, 3, 99]), np.array([120, 121, 153]), np.array([7, 8]),
             np.array([130, 120, 140, 125])]
    group = c.adjacencies(views, 8)
    assert group.shape == (4, 8, 8)
    for bits, nodes in zip(group, views):
        n = len(nodes)
        assert np.array_equal(bits[:n, :n], c.adjacency(nodes)) and not bits[n:].any()
        assert not bits[:, n:].any()


def test_graph_from_edges_is_simple():
    g = Graph.from_edges(np.array([0, 1, 1, 2]), np.array([1, 0, 1, 0]), 3)
    assert g.num_edges == 2 and g.dropped == {"self_loops": 1, "duplicate_edges": 1}


def test_parts_are_the_consecutive_views_of_one_batch():
    c = two_components()
    views = ego_views(c, np.array([0, 33, 35, 2, 39, 36]), np.random.default_rng(2), rw_hops=64)
    (whole,) = featurize(c, views, np.random.default_rng(5))
    first, second = featurize(c, views, np.random.default_rng(5), parts=2)
    assert first.num_graphs == second.num_graphs == 3
    for part in (first, second):
        assert part.ptr[0] == 0 and part.ptr[-1] == part.num_nodes == len(part.x)
        assert part.batch.max() == 2 and 0 <= part.edge_index.min() and part.edge_index.max() < part.num_nodes
    for mine, theirs in zip(split_views(first) + split_views(second), split_views(whole)):
        for key in ("x", "degree", "seed", "edge_index"):
            assert torch.equal(mine[key], theirs[key]), key
