"""Encoder (one view or the mean of several), objective, head, metrics and the embed predictor."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score
from torch_geometric.data import Batch

from domainfm.errors import DomainfmError
from domainfm.spec import DataSpec, ModelSpec, PartSpec
from domainfm_graph.data import NodeInstances
from domainfm_graph.encoder import PRESETS, build_encoder
from domainfm_graph.io import from_networkx, write_edgelist
from domainfm_graph.metrics import build_accuracy, build_micro_f1
from domainfm_graph.objective import build_objective
from domainfm_graph.predict import build_predictor, example
from domainfm_graph.sampler import GraphCollection, ego_views, featurize, split_views


@pytest.fixture(scope="module")
def karate():
    return GraphCollection([from_networkx(nx.karate_club_graph())])


def views_batch(collection, seeds, seed=0):
    rng = np.random.default_rng(seed)
    return featurize(collection, ego_views(collection, np.asarray(seeds), rng, rw_hops=32), rng)[0]


def test_paper_preset_shape_and_readout(karate):
    torch.manual_seed(0)
    enc = build_encoder("gcc").eval()
    assert PRESETS["gcc"]["num_layers"] == 4 and enc.embed_dim == 64
    assert len(enc.convs) == 4 and len(enc.readout) == 5  # input + 4 layers each read out
    assert enc.readout[0].in_features == 32 + 16 + 1
    out = enc({"graph": views_batch(karate, [0, 1, 33])})
    assert out["embedding"].shape == (3, 64)
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(3), atol=1e-5)
    assert out["tokens"].shape[0] == 3 and out["tokens"].shape[2] == 64
    with pytest.raises(DomainfmError, match="unknown graph.gcc_gin preset"):
        build_encoder("huge")
    assert build_encoder("gcc", hidden_dim=8).convs[0].nn[0].out_features == 8


def test_encoder_is_invariant_to_node_order(karate):
    torch.manual_seed(0)
    enc = build_encoder("tiny").eval()
    view = split_views(views_batch(karate, [0]))[0]
    n = view.num_nodes
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(n - 1)])
    inverse = torch.argsort(perm)
    permuted = view.clone()
    for key in ("x", "degree", "seed"):
        permuted[key] = view[key][perm]
    permuted.edge_index = inverse[view.edge_index]
    a = enc({"graph": Batch.from_data_list([view])})["embedding"]
    b = enc({"graph": Batch.from_data_list([permuted])})["embedding"]
    assert torch.allclose(a, b, atol=1e-5)


def test_infonce_prefers_matching_views(karate):
    torch.manual_seed(0)
    enc = build_encoder("tiny")
    objective = build_objective(enc).eval()
    enc.eval()
    # keys identical to the queries: each query's positive is its most similar key (cosine 1),
    # so the matched order must score a lower loss than a shuffled one
    q = views_batch(karate, [0, 33, 5, 16], seed=1)
    k = views_batch(karate, [0, 33, 5, 16], seed=1)
    shuffled = Batch.from_data_list([split_views(k)[i] for i in (3, 2, 0, 1)])
    matched = objective(enc, {"graph": q, "graph_k": k})
    mismatched = objective(enc, {"graph": q, "graph_k": shuffled})
    assert matched["loss"] < mismatched["loss"]
    assert objective.steps == 0  # eval passes do not count as training steps


def test_moco_momentum_and_queue(karate):
    torch.manual_seed(0)
    enc = build_encoder("tiny")
    objective = build_objective(enc, mode="moco", queue_size=8, momentum=0.5)
    assert not any(p.requires_grad for p in objective.key_encoder.parameters())
    assert not any(p is q for p in objective.parameters() for q in enc.parameters())
    batch = {"graph": views_batch(karate, [0, 1, 2], 1), "graph_k": views_batch(karate, [0, 1, 2], 2)}
    objective.train()
    out = objective(enc, batch)
    assert torch.isfinite(out["loss"]) and int(objective.queue_ptr) == 3
    # first step copies the encoder into the key encoder
    for key, param in zip(objective.key_encoder.parameters(), enc.parameters()):
        assert torch.equal(key, param)
    with torch.no_grad():
        first = next(enc.parameters())
        first.add_(1.0)
    objective(enc, batch)
    key = next(objective.key_encoder.parameters())
    assert torch.allclose(key, first - 0.5)  # 0.5 * old + 0.5 * (old + 1)
    assert int(objective.queue_ptr) == 6
    with pytest.raises(DomainfmError, match="mode"):
        build_objective(enc, mode="simclr")


def test_metrics_agree_with_scikit_learn():
    torch.manual_seed(0)
    logits = torch.randn(50, 4)
    target = torch.randint(0, 4, (50,))
    f1, acc = build_micro_f1(), build_accuracy()
    for lo in (0, 20):
        f1.update(logits[lo:lo + 30][: 20 if lo == 0 else 30], target[lo:lo + 30][: 20 if lo == 0 else 30])
        acc.update(logits[lo:lo + 30][: 20 if lo == 0 else 30], target[lo:lo + 30][: 20 if lo == 0 else 30])
    expected = f1_score(target.numpy(), logits.argmax(1).numpy(), average="micro")
    assert np.isclose(f1.compute().item(), expected)
    assert np.isclose(acc.compute().item(), (logits.argmax(1) == target).float().mean().item())
    ignored = build_accuracy()
    ignored.update(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, -1]))
    assert ignored.compute().item() == 1.0  # unlabelled (-1) items are skipped


def test_embedding_of_several_views_is_their_mean(karate):
    torch.manual_seed(0)
    enc = build_encoder("tiny").eval()
    nodes = np.arange(6)

    def items(views):
        return NodeInstances(karate, nodes, np.zeros(6, np.int64), views, seed=0, rw_hops=32,
                             restart_prob=0.8, pos_dim=32, max_degree=512).__getitems__(list(range(6)))

    one, three = items(1), items(3)
    assert "graph_k" not in one and len(three["graph_more"]) == 1
    with torch.no_grad():
        each = [enc({"graph": g})["embedding"] for g in
                (three["graph"], three["graph_k"], three["graph_more"][0])]
        mean = enc(three)["embedding"]
        single = enc(one)["embedding"]
    assert torch.allclose(mean, torch.stack(each).mean(0), atol=1e-6)
    assert torch.allclose(single, enc({"graph": one["graph"]})["embedding"])
    assert not torch.allclose(mean, each[0])
    with pytest.raises(ValueError, match="positive int"):
        NodeInstances(karate, nodes, np.zeros(6, np.int64), True, seed=0, rw_hops=32,
                      restart_prob=0.8, pos_dim=32, max_degree=512)


class _Model:
    """A model as ``domainfm.load_model`` gives it: parts and the specification of its data."""

    def __init__(self, head=None, level="node"):
        torch.manual_seed(0)
        self.encoder = build_encoder("tiny")
        self.head = head(self.encoder) if head else None
        task = {"level": level, "rw_hops": 32, "restart_prob": 0.8, "pos_dim": 32, "max_degree": 512}
        self.spec = ModelSpec(PartSpec("graph.gcc_gin", {}, "tiny"), data=DataSpec(task=task))


def test_predictor_writes_parquet_and_npy(tmp_path):
    from domainfm_graph.heads import build_head

    source = example(tmp_path)
    written = build_predictor()(_Model(lambda e: build_head(e, num_classes=2)), source, tmp_path / "out")
    frame = pd.read_parquet(written[0])
    assert len(frame) == 34 and frame.columns[:2].tolist() == ["node", "prediction"]
    assert frame.filter(like="emb_").shape == (34, 16)
    assert set(frame["prediction"]) <= {0, 1}
    again = build_predictor()(_Model(lambda e: build_head(e, num_classes=2)), source, tmp_path / "again")
    assert pd.read_parquet(again[0]).equals(frame)  # reproducible from the seed
    npy = build_predictor(format="npy")(_Model(), source, tmp_path / "npy")
    assert np.load(npy[0]).shape == (34, 16)
    assert npy[1].read_text().split() == frame["node"].tolist()


def test_graph_level_predictor_on_a_folder(tmp_path):
    folder = tmp_path / "graphs"
    for name, g in {"star": nx.star_graph(6), "path": nx.path_graph(7), "ring": nx.cycle_graph(9)}.items():
        write_edgelist(from_networkx(g), folder / f"{name}.edgelist")
    written = build_predictor(level="graph")(_Model(), folder, tmp_path / "out")
    frame = pd.read_parquet(written[0])
    assert frame["graph"].tolist() == ["path", "ring", "star"] and frame.shape == (3, 17)
    with pytest.raises(DomainfmError, match="holds no .edgelist"):
        build_predictor(level="graph")(_Model(), tmp_path / "out", tmp_path / "x")


def test_predictor_samples_as_the_model_spec_says(tmp_path):
    source = example(tmp_path)
    short, long = _Model(), _Model()
    short.spec = short.spec.replace(data=DataSpec(task={**short.spec.data.task, "rw_hops": 4}))
    a = pd.read_parquet(build_predictor()(short, source, tmp_path / "a")[0])
    b = pd.read_parquet(build_predictor()(long, source, tmp_path / "b")[0])
    assert a.shape == b.shape and not np.allclose(a.filter(like="emb_"), b.filter(like="emb_"))
    folder = tmp_path / "graphs"
    for name, g in {"star": nx.star_graph(6), "ring": nx.cycle_graph(9)}.items():
        write_edgelist(from_networkx(g), folder / f"{name}.edgelist")
    by_level = build_predictor()(_Model(level="graph"), folder, tmp_path / "graph")  # the data's level
    assert pd.read_parquet(by_level[0])["graph"].tolist() == ["ring", "star"]
    bare = _Model()
    bare.spec = bare.spec.replace(data=DataSpec())
    with pytest.raises(DomainfmError, match="no sampler settings"):
        build_predictor()(bare, source, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_moco_queue_takes_the_keys_of_every_rank(tmp_path, monkeypatch):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the ranks import ddp_queue
    from ddp_queue import enqueue_on_rank

    mp.spawn(enqueue_on_rank, args=(f"tcp://127.0.0.1:{port}", str(tmp_path)), nprocs=2)
    queues = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for q in queues:  # rank 0's two keys, then rank 1's, on both ranks
        assert int(q["ptr"]) == 4
        assert q["queue"][:4, 0].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert torch.equal(queues[0]["queue"], queues[1]["queue"])
