"""The graph plugin's datasets: GCC pretraining instances, node and graph classification.

One module per dataset (:mod:`.pretrain`, :mod:`.nodes`, :mod:`.graphs`), the instances and
loader they share (:mod:`.instances`), the supervised split (:mod:`.splits`) and the tiny and
broken copies the conformance harness writes (:mod:`.fixtures`).
"""

from domainfm_graph.data.graphs import GraphClassificationDataModule
from domainfm_graph.data.instances import (
    GraphInstances,
    NodeInstances,
    PretrainInstances,
    loader,
    passthrough,
)
from domainfm_graph.data.nodes import NodeClassificationDataModule
from domainfm_graph.data.pretrain import PretrainDataModule

__all__ = ["GraphClassificationDataModule", "GraphInstances", "NodeClassificationDataModule",
           "NodeInstances", "PretrainDataModule", "PretrainInstances", "loader",
           "passthrough"]
