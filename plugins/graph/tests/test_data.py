"""Datamodules: DDP sharding, reproducibility, worker processes, files and clear errors."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from domainfm.errors import DomainfmError
from domainfm_graph.data import (
    GraphClassificationDataModule,
    NodeClassificationDataModule,
    PretrainDataModule,
    loader,
    passthrough,
)
from domainfm_graph.io import from_networkx, write_edgelist

SMALL = {"rw_hops": 32, "batch_size": 4}


def pretrain_module(**kw):
    params = {"generated": 2, "generated_nodes": 40, "networkx": ["karate"], "instances": 50}
    dm = PretrainDataModule(**{**params, **SMALL, **kw})
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("length", [50, 51])
def test_two_ranks_share_an_epoch_disjointly(length):
    dm = pretrain_module(instances=length)
    ranks = [list(DistributedSampler(dm.train, num_replicas=2, rank=r, shuffle=True, seed=7))
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == -(-length // 2)
    union = ranks[0] + ranks[1]
    assert set(union) == set(range(length))
    # DistributedSampler pads an odd epoch by repeating one index; nothing else repeats
    assert len(union) - len(set(union)) == length % 2
    # the seed nodes of the epoch are fixed by the data seed, so the ranks' union is the epoch
    seeds = np.concatenate([dm.train.seeds[r] for r in ranks])
    assert np.array_equal(np.sort(np.unique(np.concatenate([dm.train.seeds[ranks[0]],
                                                            dm.train.seeds[ranks[1]]]))),
                          np.unique(dm.train.seeds)) and len(seeds) == len(union)
    again = [list(DistributedSampler(dm.train, num_replicas=2, rank=r, shuffle=True, seed=7))
             for r in range(2)]
    assert again == ranks


def test_batches_are_reproducible_and_match_in_a_worker_process():
    dm = pretrain_module()
    first = dm.train.__getitems__([3, 9, 11, 20])
    second = pretrain_module().train.__getitems__([3, 9, 11, 20])
    for key in ("graph", "graph_k"):
        assert torch.equal(first[key].x, second[key].x)
        assert torch.equal(first[key].edge_index, second[key].edge_index)
    loader = DataLoader(dm.train, batch_size=4, sampler=[3, 9, 11, 20], collate_fn=passthrough,
                        num_workers=1)
    from_worker = next(iter(loader))
    assert torch.equal(from_worker["graph"].x, first["graph"].x)
    assert from_worker["index"].tolist() == [3, 9, 11, 20]
    # the two views share the seed (first node of each view) but are separate walks
    assert first["graph"].ptr.shape == first["graph_k"].ptr.shape == (5,)


def test_pretraining_reads_edge_list_files(tmp_path):
    path = write_edgelist(from_networkx(nx.les_miserables_graph(), "les"), tmp_path / "les.edgelist")
    dm = PretrainDataModule(edgelists=[str(path)], networkx=[], generated=0, instances=8, **SMALL)
    dm.setup("fit")
    assert dm.collection.num_nodes == 77
    batch = next(iter(dm.train_dataloader()))
    assert batch["graph"].num_graphs == 4 and batch["graph"].x.shape[1] == 32
    with pytest.raises(DomainfmError, match="empty"):
        PretrainDataModule(networkx=[], generated=0).setup("fit")


def test_node_classification_from_files_and_folds(tmp_path):
    g = nx.karate_club_graph()
    edges = tmp_path / "karate.edgelist"
    write_edgelist(from_networkx(g), edges)
    labels = tmp_path / "labels.txt"
    labels.write_text("node label\n" + "".join(f"{n} {g.nodes[n]['club']}\n" for n in list(g)[:30]))
    dm = NodeClassificationDataModule(edgelist=str(edges), labels=str(labels), folds=3, fold=1, **SMALL)
    dm.setup("fit")
    assert len(dm.labels) == 30 and dm.num_classes == 2  # 4 unlabelled nodes left out
    assert set(dm.train_idx).isdisjoint(dm.test_idx)
    assert len(dm.train_idx) + len(dm.val_idx) + len(dm.test_idx) == 30
    batch = next(iter(dm.test_dataloader()))
    assert batch["target"].shape == (4,) and batch["graph"].num_graphs == 4
    with pytest.raises(DomainfmError, match="at least 20 labelled items.*class sizes"):
        NodeClassificationDataModule(edgelist=str(edges), labels=str(labels), folds=20).setup()
    with pytest.raises(DomainfmError, match="both data.params.edgelist and data.params.labels"):
        NodeClassificationDataModule(edgelist=str(edges))
    with pytest.raises(DomainfmError, match="fold must be in"):
        NodeClassificationDataModule(folds=5, fold=5)


def test_graph_classification_whole_graphs():
    dm = GraphClassificationDataModule(per_class=5, graph_nodes=16, folds=5, batch_size=20)
    dm.setup("fit")
    batch = next(iter(loader(dm.all_items(), dm.batch_size, False)))
    sizes = batch["graph"].ptr.diff()
    expected = [dm.collection.graphs[i].num_nodes for i in batch["index"].tolist()]
    assert sizes.tolist() == expected  # the instance is the whole graph
    assert batch["target"].tolist() == dm.labels[batch["index"].numpy()].tolist()
    with pytest.raises(DomainfmError, match="not found under"):
        GraphClassificationDataModule(tu_root="nowhere", tu_name="IMDB-BINARY", folds=2).setup()
