"""Graph classification: a TU benchmark folder on disk (or the embedded family task); each
graph's instance is the whole graph, seeded at its highest-degree node, as in GCC."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from torch.utils.data import Dataset

from domainfm.errors import ConfigError
from domainfm.records import NonNegativeInt, PositiveInt, Range

from domainfm_graph.data.instances import GraphInstances
from domainfm_graph.data.splits import Folds, RestartProb, SupervisedDataModule, ValFraction
from domainfm_graph.io import read_tu, tu_folder
from domainfm_graph.sampler import GraphCollection
from domainfm_graph.synthetic import family_task


class GraphClassificationDataModule(SupervisedDataModule):
    """Graph classification on a local TU folder (``tu_root/tu_name``, PyG's ``raw/`` layout or
    the unpacked benchmark zip), or the embedded family task. Nothing is downloaded or written."""

    level = "graph"

    def __init__(self, *, tu_root: str | None = None, tu_name: str | None = None,
                 per_class: PositiveInt = 30, graph_nodes: Annotated[int, Range(ge=12)] = 30,
                 batch_size: PositiveInt = 32, folds: Folds = 10, fold: NonNegativeInt = 0,
                 val_fraction: ValFraction = 0.1, num_workers: NonNegativeInt = 0, seed: int = 0,
                 rw_hops: PositiveInt = 256, restart_prob: RestartProb = 0.8,
                 pos_dim: PositiveInt = 32, max_degree: PositiveInt = 512,
                 eval_views: PositiveInt = 1) -> None:
        super().__init__(batch_size=batch_size, folds=folds, fold=fold, val_fraction=val_fraction,
                         num_workers=num_workers, seed=seed, rw_hops=rw_hops,
                         restart_prob=restart_prob, pos_dim=pos_dim, max_degree=max_degree,
                         eval_views=eval_views)
        if tu_root is not None and tu_name is None:
            raise ConfigError("graph classification needs data.params.tu_name with tu_root")
        self.tu_root, self.tu_name = tu_root, tu_name
        self.per_class, self.graph_nodes = per_class, graph_nodes

    def load(self) -> None:
        if self.tu_name is None:
            graphs, self.labels = family_task(self.per_class, nodes=self.graph_nodes,
                                              seed=self.sampling["seed"])
            self.classes = [str(c) for c in range(int(self.labels.max()) + 1)]
            self.source = "the embedded family task"
        else:
            root = self.tu_root or "data"
            graphs, self.labels, self.classes = read_tu(root, self.tu_name)
            self.source = str(tu_folder(root, self.tu_name))
        self.collection = GraphCollection(graphs)
        self.keys = np.arange(len(graphs))

    def dataset(self, positions: np.ndarray, views: int = 1) -> Dataset:
        return GraphInstances(self.collection, positions, self.labels[positions], views,
                              **self.sampling)
