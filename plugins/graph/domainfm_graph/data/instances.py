"""Datasets and datamodules: GCC pretraining instances, node and graph classification.

All datasets are map-style, so under DDP Lightning gives each rank a disjoint share of the
indices with its ``DistributedSampler`` (which pads the last round by repeating the first
indices when the length does not divide by the world size). Each dataset implements
``__getitems__``: the DataLoader hands it a whole batch of indices, and the sampler builds the
batch's subgraphs and eigenvectors in one vectorised pass (see :mod:`domainfm_graph.sampler`).
Randomness comes from ``numpy.random.default_rng([seed, *indices])``: a batch is reproducible
from the seed and its indices, in any worker process.

Batches: ``{"target"?, "graph": Batch, "graph_k"?: Batch, "index": (B,)}``; ``graph_k`` is the
second view (pretraining, and the frozen protocol's mean of two views).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from domainfm.errors import DomainfmError
from domainfm_graph.io import Graph, read_edgelist, read_labels
from domainfm_graph.sampler import GraphCollection, ego_views, featurize, whole_graph_views
from domainfm_graph.synthetic import activity_task, bundled_graphs, family_task, generated_graphs


def passthrough(batch: Any) -> Any:
    """The batch is already built by ``__getitems__``."""
    return batch


class _Instances(Dataset):
    """Shared sampling parameters and the per-batch random generator."""

    def __init__(self, collection: GraphCollection, *, seed: int, rw_hops: int,
                 restart_prob: float, pos_dim: int, max_degree: int) -> None:
        self.collection = collection
        self.seed = seed
        self.walk = {"rw_hops": rw_hops, "restart_prob": restart_prob}
        self.features = {"pos_dim": pos_dim, "max_degree": max_degree}

    def rng(self, indices: list[int]) -> np.random.Generator:
        return np.random.default_rng([self.seed, *map(int, indices)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError


class PretrainInstances(_Instances):
    """GCC instances: seed nodes drawn once per dataset with probability ~ degree^0.75, two
    RWR views each. Index ``i`` always has seed node ``seeds[i]``; its walks vary per batch."""

    def __init__(self, collection: GraphCollection, length: int, **kwargs: Any) -> None:
        super().__init__(collection, **kwargs)
        cdf = np.cumsum(collection.seed_weights())
        draws = np.random.default_rng([self.seed, 0x6CC]).random(length)
        self.seeds = np.minimum(np.searchsorted(cdf, draws * cdf[-1], side="right"),
                                collection.num_nodes - 1)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        rng = self.rng(indices)
        seeds = self.seeds[np.asarray(indices, dtype=np.int64)]
        views = ego_views(self.collection, np.concatenate([seeds, seeds]), rng, **self.walk)
        graph, graph_k = featurize(self.collection, views, rng, parts=2, **self.features)
        return {"index": torch.as_tensor(np.asarray(indices, dtype=np.int64)),
                "graph": graph, "graph_k": graph_k}


class NodeInstances(_Instances):
    """Node classification: each node's instance is its RWR ego subgraph (GCC's protocol)."""

    def __init__(self, collection: GraphCollection, nodes: np.ndarray, labels: np.ndarray,
                 two_views: bool = False, **kwargs: Any) -> None:
        super().__init__(collection, **kwargs)
        self.nodes, self.labels, self.two_views = nodes, labels, two_views

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        rng = self.rng(indices)
        idx = np.asarray(indices, dtype=np.int64)
        seeds = self.nodes[idx]
        repeat = 2 if self.two_views else 1
        views = ego_views(self.collection, np.tile(seeds, repeat), rng, **self.walk)
        graphs = featurize(self.collection, views, rng, parts=repeat, **self.features)
        out = {"target": torch.as_tensor(self.labels[idx]), "graph": graphs[0],
               "index": torch.as_tensor(seeds)}
        if self.two_views:
            out["graph_k"] = graphs[1]
        return out


class GraphInstances(_Instances):
    """Graph classification: the whole graph, seed = its highest-degree node."""

    def __init__(self, collection: GraphCollection, graph_ids: np.ndarray, labels: np.ndarray,
                 two_views: bool = False, **kwargs: Any) -> None:
        super().__init__(collection, **kwargs)
        self.graph_ids, self.labels, self.two_views = graph_ids, labels, two_views

    def __len__(self) -> int:
        return len(self.graph_ids)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        rng = self.rng(indices)
        idx = np.asarray(indices, dtype=np.int64)
        repeat = 2 if self.two_views else 1  # the second view: same graph, other eigenvector signs
        views = whole_graph_views(self.collection, self.graph_ids[idx]) * repeat
        graphs = featurize(self.collection, views, rng, parts=repeat, **self.features)
        out = {"target": torch.as_tensor(self.labels[idx]), "graph": graphs[0],
               "index": torch.as_tensor(self.graph_ids[idx])}
        if self.two_views:
            out["graph_k"] = graphs[1]
        return out


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=passthrough,
                      num_workers=num_workers, persistent_workers=num_workers > 0)


# --------------------------------------------------------------------------- pretraining


class PretrainDataModule(pl.LightningDataModule):
    """GCC pretraining on edge-list files, networkx's bundled graphs and generated graphs."""

    def __init__(self, *, edgelists: list[str] | None = None,
                 networkx: list[str] | None = None, generated: int = 16,
                 generated_nodes: int = 200, instances: int = 65536, val_instances: int = 256,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0, rw_hops: int = 256,
                 restart_prob: float = 0.8, pos_dim: int = 32, max_degree: int = 512) -> None:
        super().__init__()
        self.edgelists = list(edgelists or [])
        self.networkx = ["karate", "les_miserables", "florentine_families",
                         "davis_southern_women"] if networkx is None else list(networkx)
        self.generated, self.generated_nodes = generated, generated_nodes
        self.instances, self.val_instances = instances, val_instances
        self.batch_size, self.num_workers = batch_size, num_workers
        self.sampling = {"seed": seed, "rw_hops": rw_hops, "restart_prob": restart_prob,
                         "pos_dim": pos_dim, "max_degree": max_degree}
        self.collection: GraphCollection | None = None

    def graphs(self) -> list[Graph]:
        graphs = [read_edgelist(p) for p in self.edgelists]
        graphs += bundled_graphs(self.networkx)
        graphs += generated_graphs(self.generated, nodes=self.generated_nodes,
                                   seed=self.sampling["seed"])
        if not graphs:
            raise DomainfmError("graph pretraining data is empty: give data.params.edgelists, "
                                "networkx or generated > 0")
        return graphs

    def setup(self, stage: str | None = None) -> None:
        if self.collection is None:
            self.collection = GraphCollection(self.graphs())
            self.train = PretrainInstances(self.collection, self.instances, **self.sampling)
            val = dict(self.sampling, seed=self.sampling["seed"] + 1)
            self.val = PretrainInstances(self.collection, self.val_instances, **val)

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train, self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.val, self.batch_size, False, self.num_workers)


# --------------------------------------------------------------------------- supervised


class _Supervised(pl.LightningDataModule):
    """Stratified k-fold split: train on the other folds, validate and test on ``fold``."""

    def __init__(self, *, batch_size: int, folds: int, fold: int, num_workers: int, seed: int,
                 rw_hops: int, restart_prob: float, pos_dim: int, max_degree: int) -> None:
        super().__init__()
        if not 0 <= fold < folds:
            raise DomainfmError(f"data.params.fold must be in [0, {folds}), got {fold}")
        self.batch_size, self.folds, self.fold, self.num_workers = batch_size, folds, fold, num_workers
        self.sampling = {"seed": seed, "rw_hops": rw_hops, "restart_prob": restart_prob,
                         "pos_dim": pos_dim, "max_degree": max_degree}
        self.ready = False

    def split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.model_selection import StratifiedKFold

        counts = np.bincount(labels)
        if counts[counts > 0].min() < self.folds:
            raise DomainfmError(
                f"stratified {self.folds}-fold split needs every class to have at least "
                f"{self.folds} labelled items; class sizes are {counts.tolist()}")
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=self.sampling["seed"])
        return list(folds.split(np.zeros(len(labels)), labels))[self.fold]

    def dataset(self, positions: np.ndarray, two_views: bool = False) -> Dataset:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.ready:
            self.load()
            self.train_idx, self.test_idx = self.split(self.labels)
            self.ready = True

    def train_dataloader(self) -> DataLoader:
        return _loader(self.dataset(self.train_idx), self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.dataset(self.test_idx), self.batch_size, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return _loader(self.all_items(), self.batch_size, False, self.num_workers)

    def all_items(self, two_views: bool = False) -> Dataset:
        return self.dataset(np.arange(len(self.labels)), two_views)


class NodeClassificationDataModule(_Supervised):
    """Node classification from an edge list and a ``node label`` file (or the embedded task).

    Nodes the label file does not name stay in the graph but out of the task.
    """

    def __init__(self, *, edgelist: str | None = None, labels: str | None = None,
                 nodes: int = 300, batch_size: int = 32, folds: int = 10, fold: int = 0,
                 num_workers: int = 0, seed: int = 0, rw_hops: int = 256,
                 restart_prob: float = 0.8, pos_dim: int = 32, max_degree: int = 512) -> None:
        super().__init__(batch_size=batch_size, folds=folds, fold=fold, num_workers=num_workers,
                         seed=seed, rw_hops=rw_hops, restart_prob=restart_prob, pos_dim=pos_dim,
                         max_degree=max_degree)
        if (edgelist is None) != (labels is None):
            raise DomainfmError("node classification needs both data.params.edgelist and "
                                "data.params.labels (or neither, for the embedded task)")
        self.edgelist, self.label_file, self.nodes = edgelist, labels, nodes

    def load(self) -> None:
        if self.edgelist is None:
            self.graph, all_labels = activity_task(self.nodes, seed=self.sampling["seed"])
        else:
            self.graph = read_edgelist(Path(self.edgelist))
            all_labels = read_labels(Path(self.label_file), self.graph)
        self.collection = GraphCollection([self.graph])
        self.node_ids = np.flatnonzero(all_labels >= 0)
        self.labels = all_labels[self.node_ids]
        self.num_classes = int(self.labels.max()) + 1

    def dataset(self, positions: np.ndarray, two_views: bool = False) -> Dataset:
        return NodeInstances(self.collection, self.node_ids[positions], self.labels[positions],
                             two_views, **self.sampling)


class GraphClassificationDataModule(_Supervised):
    """Graph classification on a local PyG ``TUDataset`` folder, or the embedded family task."""

    def __init__(self, *, tu_root: str | None = None, tu_name: str | None = None,
                 per_class: int = 30, graph_nodes: int = 30, batch_size: int = 32,
                 folds: int = 10, fold: int = 0, num_workers: int = 0, seed: int = 0,
                 rw_hops: int = 256, restart_prob: float = 0.8, pos_dim: int = 32,
                 max_degree: int = 512) -> None:
        super().__init__(batch_size=batch_size, folds=folds, fold=fold, num_workers=num_workers,
                         seed=seed, rw_hops=rw_hops, restart_prob=restart_prob, pos_dim=pos_dim,
                         max_degree=max_degree)
        self.tu_root, self.tu_name = tu_root, tu_name
        self.per_class, self.graph_nodes = per_class, graph_nodes

    def load(self) -> None:
        if self.tu_name is None:
            graphs, self.labels = family_task(self.per_class, nodes=self.graph_nodes,
                                              seed=self.sampling["seed"])
        else:
            graphs, self.labels = load_tu(self.tu_root or "data", self.tu_name)
        self.collection = GraphCollection(graphs)
        self.num_classes = int(self.labels.max()) + 1

    def dataset(self, positions: np.ndarray, two_views: bool = False) -> Dataset:
        return GraphInstances(self.collection, positions, self.labels[positions], two_views,
                              **self.sampling)


def load_tu(root: str, name: str) -> tuple[list[Graph], np.ndarray]:
    """A TU benchmark already on disk under ``root/name`` (nothing is downloaded)."""
    from torch_geometric.datasets import TUDataset

    from domainfm_graph.io import from_pyg

    folder = Path(root) / name
    if not (folder / "raw").is_dir() and not (folder / "processed").is_dir():
        raise DomainfmError(f"TU dataset {name!r} not found under {str(folder)!r} (expected the "
                            "raw/ or processed/ folder of torch_geometric.datasets.TUDataset)")
    dataset = TUDataset(root, name)
    graphs = [from_pyg(d, f"{name}_{i}") for i, d in enumerate(dataset)]
    return graphs, dataset.y.numpy().astype(np.int64)
