"""Edge-list and label files: the bad inputs users bring, each handled or named in the error."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from domainfm.errors import DomainfmError
from domainfm_graph.io import from_networkx, read_edgelist, read_labels, write_edgelist


def write(path, text):
    path.write_text(text)
    return path


def test_non_integer_ids_self_loops_and_duplicates(tmp_path):
    g = read_edgelist(write(tmp_path / "g.edgelist",
                            "# airports\nLHR CDG\nCDG LHR\nLHR LHR\nLHR JFK 3.5\n\nJFK CDG\n"))
    assert sorted(g.names.tolist()) == ["CDG", "JFK", "LHR"]
    assert g.num_edges == 3
    assert g.dropped == {"self_loops": 1, "duplicate_edges": 1}
    assert (g.degree == 2).all()
    # CSR is symmetric: v in N(u) iff u in N(v)
    for u in range(g.num_nodes):
        for v in g.neighbours(u):
            assert u in g.neighbours(v)


def test_integer_ids_are_sorted_numerically(tmp_path):
    g = read_edgelist(write(tmp_path / "g.txt", "10 9\n9 100\n"))
    assert g.names.tolist() == ["9", "10", "100"]


def test_edge_with_one_node_is_named(tmp_path):
    with pytest.raises(DomainfmError, match=r"g.txt.*edge 2 \('7'\) has one node"):
        read_edgelist(write(tmp_path / "g.txt", "1 2\n7\n"))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DomainfmError, match="does not exist"):
        read_edgelist(tmp_path / "nope.edgelist")
    with pytest.raises(DomainfmError, match="no edges|cannot be parsed"):
        read_edgelist(write(tmp_path / "empty.txt", "# nothing\n"))


def test_labels_with_header_missing_nodes_and_unknown_ids(tmp_path):
    g = read_edgelist(write(tmp_path / "g.txt", "a b\nb c\nc d\n"))
    labels = read_labels(write(tmp_path / "l.txt", "node label\na 2\nb 0\nc 2\n"), g)
    assert labels.tolist() == [1, 0, 1, -1]  # classes "0","2" -> 0,1; d unlabelled
    with pytest.raises(DomainfmError, match=r"no label for 1 node.*\['d'\]"):
        read_labels(tmp_path / "l.txt", g, allow_missing=False)
    with pytest.raises(DomainfmError, match=r"names 2 node\(s\) absent.*\['x', 'y'\]"):
        read_labels(write(tmp_path / "bad.txt", "a 1\nx 0\ny 0\n"), g)
    with pytest.raises(DomainfmError, match=r"labels node\(s\) \['a'\] twice"):
        read_labels(write(tmp_path / "dup.txt", "a 1\na 0\n"), g)


def test_write_then_read_round_trip(tmp_path):
    g = from_networkx(nx.les_miserables_graph())
    back = read_edgelist(write_edgelist(g, tmp_path / "les.edgelist"))
    assert back.num_edges == g.num_edges == nx.les_miserables_graph().number_of_edges()
    assert sorted(back.names.tolist()) == sorted(g.names.tolist())
    assert np.array_equal(np.sort(back.degree), np.sort(g.degree))
