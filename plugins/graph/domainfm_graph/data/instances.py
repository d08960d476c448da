"""Map-style datasets of GCC instances and the loader they share.

All datasets are map-style, so under DDP Lightning gives each rank a disjoint share of the
indices with its ``DistributedSampler`` (which pads the last round by repeating the first
indices when the length does not divide by the world size). Each dataset implements
``__getitems__``: the DataLoader hands it a whole batch of indices, and the sampler builds the
batch's subgraphs and eigenvectors in one vectorised pass (see :mod:`domainfm_graph.sampler`).
Randomness comes from ``numpy.random.default_rng([seed, *indices])``: a batch is reproducible
from the seed and its indices, in any worker process.

Batches: ``{"target"?, "graph": Batch, "graph_k"?: Batch, "graph_more"?: [Batch], "index": (B,)}``;
``graph_k`` is the second view (pretraining's key, or a second view of a labelled item),
``graph_more`` any further views of a labelled item. The encoder embeds a labelled item as the
mean over its views (GCC's frozen protocol uses two).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from domainfm_graph.sampler import GraphCollection, ego_views, featurize, whole_graph_views

def passthrough(batch: Any) -> Any:
    """The batch is already built by ``__getitems__``."""
    return batch


def loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0) -> DataLoader:
    """A DataLoader that hands the dataset whole batches of indices."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=passthrough,
                      num_workers=num_workers, persistent_workers=num_workers > 0)


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


def _views(out: dict[str, Any], graphs: list) -> dict[str, Any]:
    """``graph``, then ``graph_k`` and ``graph_more`` for a second and further views."""
    out["graph"] = graphs[0]
    if len(graphs) > 1:
        out["graph_k"] = graphs[1]
    if len(graphs) > 2:
        out["graph_more"] = list(graphs[2:])
    return out


def _count(views: int) -> int:
    if isinstance(views, bool) or views < 1:  # True would read as one view
        raise ValueError(f"views must be a positive int, got {views!r}")
    return int(views)


class NodeInstances(_Instances):
    """Node classification: each node's instance is its RWR ego subgraph (GCC's protocol);
    ``views`` independent walks per node."""

    def __init__(self, collection: GraphCollection, nodes: np.ndarray, labels: np.ndarray,
                 views: int = 1, **kwargs: Any) -> None:
        super().__init__(collection, **kwargs)
        self.nodes, self.labels, self.views = nodes, labels, _count(views)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        rng = self.rng(indices)
        idx = np.asarray(indices, dtype=np.int64)
        seeds = self.nodes[idx]
        walks = ego_views(self.collection, np.tile(seeds, self.views), rng, **self.walk)
        graphs = featurize(self.collection, walks, rng, parts=self.views, **self.features)
        return _views({"target": torch.as_tensor(self.labels[idx]),
                       "index": torch.as_tensor(seeds)}, graphs)


class GraphInstances(_Instances):
    """Graph classification: the whole graph, seed = its highest-degree node."""

    def __init__(self, collection: GraphCollection, graph_ids: np.ndarray, labels: np.ndarray,
                 views: int = 1, **kwargs: Any) -> None:
        super().__init__(collection, **kwargs)
        self.graph_ids, self.labels, self.views = graph_ids, labels, _count(views)

    def __len__(self) -> int:
        return len(self.graph_ids)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        rng = self.rng(indices)
        idx = np.asarray(indices, dtype=np.int64)
        # further views: the same graph, other eigenvector signs
        walks = whole_graph_views(self.collection, self.graph_ids[idx]) * self.views
        graphs = featurize(self.collection, walks, rng, parts=self.views, **self.features)
        return _views({"target": torch.as_tensor(self.labels[idx]),
                       "index": torch.as_tensor(self.graph_ids[idx])}, graphs)
