"""GCC pretraining data: instances (two RWR views) over edge lists, networkx's bundled graphs
and generated graphs, mixed in one collection."""

from __future__ import annotations

from typing import Annotated

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from domainfm.errors import DataError
from domainfm.records import NonNegativeInt, PositiveInt, Range
from domainfm.spec import DataSpec

from domainfm_graph.data.instances import PretrainInstances, loader
from domainfm_graph.data.splits import INPUTS, RestartProb, sampler_task
from domainfm_graph.io import Graph, read_edgelist
from domainfm_graph.sampler import GraphCollection
from domainfm_graph.synthetic import bundled_graphs, generated_graphs


class PretrainDataModule(pl.LightningDataModule):
    """GCC pretraining on edge-list files, networkx's bundled graphs and generated graphs.

    There is no test split: a pretraining run is scored downstream.
    """

    def __init__(self, *, edgelists: list[str] | None = None,
                 networkx: list[str] | None = None, generated: NonNegativeInt = 16,
                 generated_nodes: Annotated[int, Range(ge=16)] = 200,
                 instances: PositiveInt = 65536, val_instances: PositiveInt = 256,
                 batch_size: PositiveInt = 32, num_workers: NonNegativeInt = 0, seed: int = 0,
                 rw_hops: PositiveInt = 256, restart_prob: RestartProb = 0.8,
                 pos_dim: PositiveInt = 32, max_degree: PositiveInt = 512) -> None:
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
            raise DataError("graph pretraining data is empty: give data.params.edgelists, "
                            "networkx or generated > 0")
        return graphs

    def setup(self, stage: str | None = None) -> None:
        """Read every graph and check that walks can start; nothing is read twice."""
        if self.collection is None:
            collection = GraphCollection(self.graphs())
            if not collection.degree.any():
                names = ", ".join(g.name for g in collection.graphs)
                raise DataError(f"graph pretraining data ({names}) has no edge between two nodes "
                                "(only self-loops or isolated nodes): no walk can start")
            self.train = PretrainInstances(collection, self.instances, **self.sampling)
            val = dict(self.sampling, seed=self.sampling["seed"] + 1)
            self.val = PretrainInstances(collection, self.val_instances, **val)
            self.collection = collection

    def data_spec(self) -> DataSpec:
        return DataSpec(inputs=INPUTS, task=sampler_task(self.sampling, "node"))

    def train_dataloader(self) -> DataLoader:
        return loader(self.train, self.batch_size, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return loader(self.val, self.batch_size, False, self.num_workers)
