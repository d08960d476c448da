"""Honest k-fold splits, the data specification, and classes that come from the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from domainfm.errors import DataError
from domainfm_graph.data import GraphClassificationDataModule, NodeClassificationDataModule
from domainfm_graph.data.fixtures import graph_files, node_files
from domainfm_graph.encoder import build_encoder
from domainfm_graph.heads import build_head
from domainfm_graph.io import read_edgelist, read_tu, write_labels, write_tu
from domainfm_graph.synthetic import activity_task, family_task

SMALL = {"rw_hops": 16, "batch_size": 8}


def five_classes(tmp_path):
    """The role task's graph with degree quintiles as labels (5 classes, 16 nodes each)."""
    params = node_files(tmp_path)
    graph = read_edgelist(params["edgelist"])
    ranks = np.argsort(np.argsort(graph.degree + np.random.default_rng(0).random(graph.num_nodes)))
    labels = (5 * ranks // graph.num_nodes).astype(np.int64)
    write_labels(tmp_path / "quintiles.labels", graph, labels)
    return {**params, "labels": str(tmp_path / "quintiles.labels")}


def test_test_fold_is_held_out_and_validation_comes_from_the_other_folds(tmp_path):
    from sklearn.model_selection import StratifiedKFold

    dm = NodeClassificationDataModule(nodes=80, folds=5, fold=2, seed=3, **SMALL)
    dm.setup("fit")
    train, val, test = (set(dm.split_keys(s)) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == len(dm.labels) == 80
    # the test split is exactly fold 2 of the seeded stratified 5-fold split
    expected = list(StratifiedKFold(5, shuffle=True, random_state=3).split(dm.labels, dm.labels))[2][1]
    assert np.array_equal(dm.test_idx, np.sort(expected))
    # validation: a stratified tenth of the 64 training-fold nodes, every class in it
    assert len(dm.val_idx) == 6 and set(dm.labels[dm.val_idx]) == {0, 1, 2, 3}
    again = NodeClassificationDataModule(nodes=80, folds=5, fold=2, seed=3, **SMALL)
    again.setup()
    assert np.array_equal(again.val_idx, dm.val_idx)  # seeded
    other = NodeClassificationDataModule(nodes=80, folds=5, fold=3, seed=3, **SMALL)
    other.setup()
    assert set(other.split_keys("test")).isdisjoint(test)  # folds partition the nodes
    batch = next(iter(dm.val_dataloader()))
    assert sorted(batch["target"].tolist()) == sorted(dm.labels[dm.val_idx].tolist())


def test_graph_level_splits_and_frozen_items(tmp_path):
    dm = GraphClassificationDataModule(**graph_files(tmp_path), folds=5, **SMALL)
    dm.setup()
    keys = {s: set(dm.split_keys(s)) for s in ("train", "val", "test")}
    assert keys["test"].isdisjoint(keys["val"] | keys["train"]) and len(keys["test"]) == 4
    assert len(dm.all_items()) == 20  # every graph, to embed them all
    with torch.no_grad():
        features = build_encoder("tiny").eval()(dm.all_items(views=2).__getitems__(list(range(20))))
    assert features["embedding"].shape == (20, 16)
    evaluated = GraphClassificationDataModule(**graph_files(tmp_path), folds=5, eval_views=2, **SMALL)
    evaluated.setup()
    test = next(iter(evaluated.test_dataloader()))  # evaluation items come as two views
    assert "graph_k" in test and "graph_k" not in next(iter(evaluated.train_dataloader()))
    spec = dm.data_spec()
    assert spec.num_classes == 4 and spec.task["level"] == "graph"
    assert spec.task["label_source"].endswith("FAMILY")


def test_num_classes_and_sampler_settings_come_from_the_data(tmp_path):
    dm = NodeClassificationDataModule(**five_classes(tmp_path), folds=5, pos_dim=16, **SMALL)
    dm.setup()
    spec = dm.data_spec()
    assert spec.num_classes == 5 and spec.task["class_names"] == ["0", "1", "2", "3", "4"]
    assert {k: spec.task[k] for k in ("level", "rw_hops", "restart_prob", "pos_dim", "max_degree")} \
        == {"level": "node", "rw_hops": 16, "restart_prob": 0.8, "pos_dim": 16, "max_degree": 512}
    hints = spec.hints()
    head = build_head(type("E", (), {"embed_dim": 8})(), **{k: hints[k] for k in
                      ("num_classes", "class_names", "label_source")})
    assert head.linear.out_features == 5
    with pytest.raises(DataError, match=r"quintiles.labels: the labels name 5 classes .* "
                                         r"head.params.num_classes is 3"):
        build_head(type("E", (), {"embed_dim": 8})(), num_classes=3,
                   class_names=hints["class_names"], label_source=hints["label_source"])


def test_a_config_with_too_few_classes_is_one_line_naming_the_label_file(tmp_path, capsys):
    from domainfm.cli import main

    params = {**five_classes(tmp_path), "folds": 5, **SMALL}
    run = tmp_path / "run"
    config = {"seed": 0, "output_dir": str(run),
              "data": {"name": "graph.node_classification", "params": params},
              "encoder": {"name": "graph.gcc_gin", "preset": "tiny"},
              "head": {"name": "graph.linear", "params": {"num_classes": 3}},
              "trainer": {"max_steps": 1, "accelerator": "cpu", "enable_progress_bar": False}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["finetune", "--config", str(path)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "quintiles.labels" in lines[0] and "num_classes is 3" in lines[0]
    assert not run.exists()


def test_tu_folders_round_trip_in_both_layouts(tmp_path):
    graphs, labels = family_task(3, nodes=14, seed=1)
    for folder in (tmp_path / "SET", tmp_path / "pyg" / "SET" / "raw"):
        write_tu(folder, "SET", graphs, labels * 2 - 1)  # labels -1, 1, 3, 5 as TU files have
        root = tmp_path if folder.name == "SET" else tmp_path / "pyg"
        back, got, classes = read_tu(root, "SET")
        assert got.tolist() == labels.tolist() and classes == ["-1", "1", "3", "5"]
        assert [g.num_nodes for g in back] == [g.num_nodes for g in graphs]
        assert [g.num_edges for g in back] == [g.num_edges for g in graphs]
        assert all(np.array_equal(a.indices, b.indices) for a, b in zip(back, graphs))


def test_embedded_task_labels_are_degree_quartiles():
    graph, labels = activity_task(80, seed=0)
    assert np.bincount(labels).tolist() == [20, 20, 20, 20]
    assert graph.degree[labels == 3].mean() > graph.degree[labels == 0].mean()
