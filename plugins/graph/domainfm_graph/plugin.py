"""Hook implementations only: records that point at the modules that do the work.

Builds are named as ``"module:function"`` strings, so listing plugins imports none of them (nor
torch): only this module and ``presets.py`` load when the host discovers the plugin.
"""

from __future__ import annotations

from domainfm import hookimpl
from domainfm.records import (
    DatasetRecord,
    EncoderRecord,
    HeadRecord,
    MetricRecord,
    ObjectiveRecord,
    PredictorRecord,
)

from domainfm_graph.presets import PRESETS

_TINY_SAMPLING = {"rw_hops": 32, "batch_size": 8}
_FIXTURES = "domainfm_graph.data.fixtures"


@hookimpl
def domainfm_datasets() -> list[DatasetRecord]:
    return [
        DatasetRecord(
            "graph.gcc_pretrain",
            "GCC pretraining instances (two RWR views) from edge lists, networkx and generated graphs.",
            "domainfm_graph.data:PretrainDataModule",
            tiny_params={"generated": 2, "generated_nodes": 40, "instances": 64,
                         "val_instances": 16, "networkx": ["karate"], **_TINY_SAMPLING},
            default_encoder="graph.gcc_gin",
            files=f"{_FIXTURES}:pretrain_files", bad_inputs=f"{_FIXTURES}:pretrain_bad_inputs",
        ),
        DatasetRecord(
            "graph.node_classification",
            "Node classification on an edge list + label file (default: degree-quartile roles).",
            "domainfm_graph.data:NodeClassificationDataModule",
            tiny_params={"nodes": 80, "folds": 5, **_TINY_SAMPLING},
            default_encoder="graph.gcc_gin",
            default_head="graph.linear",
            default_metrics=("graph.micro_f1", "graph.accuracy"),
            files=f"{_FIXTURES}:node_files", bad_inputs=f"{_FIXTURES}:node_bad_inputs",
            demo={"params": dict(_TINY_SAMPLING, nodes=120, folds=5), "pretrain_steps": 100,
                  "finetune_steps": 150, "lr": 5e-3},
        ),
        DatasetRecord(
            "graph.graph_classification",
            "Graph classification on a local TU dataset (default: which generator made a graph).",
            "domainfm_graph.data:GraphClassificationDataModule",
            tiny_params={"per_class": 5, "graph_nodes": 16, "folds": 5, **_TINY_SAMPLING},
            default_encoder="graph.gcc_gin",
            default_head="graph.linear",
            default_metrics=("graph.accuracy", "graph.micro_f1"),
            files=f"{_FIXTURES}:graph_files", bad_inputs=f"{_FIXTURES}:graph_bad_inputs",
        ),
    ]


@hookimpl
def domainfm_encoders() -> list[EncoderRecord]:
    return [EncoderRecord(
        "graph.gcc_gin",
        "GCC's GIN over eigenvector, degree and seed features with a layer-wise sum readout.",
        "domainfm_graph.encoder:build_encoder",
        presets=PRESETS,
        default_dataset="graph.gcc_pretrain",
        default_objective="graph.gcc",
        benchmark_preset="gcc",
        benchmark_data={"generated": 4, "generated_nodes": 400, "instances": 4096,
                        "rw_hops": 256, "batch_size": 256},
        weights={"gcc": "domainfm_graph.weights:gcc_state_dict"},
    )]


@hookimpl
def domainfm_objectives() -> list[ObjectiveRecord]:
    return [ObjectiveRecord("graph.gcc", "GCC InfoNCE (temperature 0.07), end-to-end or MoCo.",
                            "domainfm_graph.objective:build_objective")]


@hookimpl
def domainfm_heads() -> list[HeadRecord]:
    return [HeadRecord("graph.linear",
                       "Linear classifier on a node's ego-subgraph or a whole graph's embedding.",
                       "domainfm_graph.heads:build_head")]


@hookimpl
def domainfm_metrics() -> list[MetricRecord]:
    return [
        MetricRecord("graph.micro_f1", "Micro-averaged F1 (single-label classes).",
                     "domainfm_graph.metrics:build_micro_f1"),
        MetricRecord("graph.accuracy", "Classification accuracy.", "domainfm_graph.metrics:build_accuracy"),
    ]


@hookimpl
def domainfm_predictors() -> list[PredictorRecord]:
    return [PredictorRecord(
        "graph.embed",
        "Node (or graph) embeddings of an edge list as Parquet or .npy, with predicted classes.",
        "domainfm_graph.predict:build_predictor",
        dataset="graph.node_classification",
        example="domainfm_graph.predict:example",
        bad_inputs="domainfm_graph.predict:bad_inputs",
    )]
