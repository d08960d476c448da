"""Node classification: an edge list and a ``node label`` file (or the embedded role task);
each node's instance is its RWR ego subgraph, as in GCC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from torch.utils.data import Dataset

from domainfm.errors import ConfigError
from domainfm.records import NonNegativeInt, PositiveInt, Range

from domainfm_graph.data.instances import NodeInstances
from domainfm_graph.data.splits import Folds, RestartProb, SupervisedDataModule, ValFraction
from domainfm_graph.io import read_edgelist, read_node_labels
from domainfm_graph.sampler import GraphCollection
from domainfm_graph.synthetic import activity_task


class NodeClassificationDataModule(SupervisedDataModule):
    """Node classification from an edge list and a ``node label`` file (or the embedded task).

    Nodes the label file does not name stay in the graph but out of the task. Classes are the
    label file's (their number is the data's ``num_classes``).
    """

    level = "node"

    def __init__(self, *, edgelist: str | None = None, labels: str | None = None,
                 nodes: Annotated[int, Range(ge=16)] = 300, batch_size: PositiveInt = 32,
                 folds: Folds = 10, fold: NonNegativeInt = 0, val_fraction: ValFraction = 0.1,
                 num_workers: NonNegativeInt = 0, seed: int = 0, rw_hops: PositiveInt = 256,
                 restart_prob: RestartProb = 0.8, pos_dim: PositiveInt = 32,
                 max_degree: PositiveInt = 512, eval_views: PositiveInt = 1) -> None:
        super().__init__(batch_size=batch_size, folds=folds, fold=fold, val_fraction=val_fraction,
                         num_workers=num_workers, seed=seed, rw_hops=rw_hops,
                         restart_prob=restart_prob, pos_dim=pos_dim, max_degree=max_degree,
                         eval_views=eval_views)
        if (edgelist is None) != (labels is None):
            raise ConfigError("node classification needs both data.params.edgelist and "
                              "data.params.labels (or neither, for the embedded task)")
        self.edgelist, self.label_file, self.nodes = edgelist, labels, nodes

    def load(self) -> None:
        if self.edgelist is None:
            self.graph, all_labels = activity_task(self.nodes, seed=self.sampling["seed"])
            self.classes = [str(c) for c in range(int(all_labels.max()) + 1)]
            self.source = "the embedded activity task"
        else:
            self.graph = read_edgelist(Path(self.edgelist))
            all_labels, self.classes = read_node_labels(Path(self.label_file), self.graph)
            self.source = str(self.label_file)
        self.collection = GraphCollection([self.graph])
        self.node_ids = np.flatnonzero(all_labels >= 0)
        self.labels = all_labels[self.node_ids]
        self.keys = self.graph.names[self.node_ids].astype(str)

    def dataset(self, positions: np.ndarray, views: int = 1) -> Dataset:
        return NodeInstances(self.collection, self.node_ids[positions], self.labels[positions],
                             views, **self.sampling)
