"""Embed a graph file with a loaded model: node (or graph) embeddings as ``.npy`` or Parquet.

Node level: every node of an edge list gets the embedding of its ego subgraph (mean of two
RWR views, reproducible from ``seed``), plus the predicted class when the model has a head.
Graph level: each edge list (a file, or every ``*.edgelist``/``*.txt`` in a folder) is one graph.
The sampler settings default to those the model was trained with (its ``config.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
import torch

from domainfm.errors import DomainfmError
from domainfm.io import atomic_path
from domainfm_graph.data import GraphInstances, NodeInstances, passthrough
from domainfm_graph.io import Graph, from_networkx, read_edgelist, write_edgelist
from domainfm_graph.sampler import GraphCollection

SAMPLING = ("rw_hops", "restart_prob", "pos_dim", "max_degree")


def _sampling(model: Any, seed: int) -> dict[str, Any]:
    params = ((getattr(model, "config", None) or {}).get("data") or {}).get("params") or {}
    defaults = {"rw_hops": 256, "restart_prob": 0.8, "pos_dim": 32, "max_degree": 512}
    return {"seed": seed, **{k: params.get(k, v) for k, v in defaults.items()}}


def _sources(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix in (".edgelist", ".txt"))
        if not files:
            raise DomainfmError(f"folder {str(source)!r} holds no .edgelist or .txt edge lists")
        return files
    if not source.is_file():
        raise DomainfmError(f"input {str(source)!r} does not exist")
    return [source]


@torch.no_grad()
def _run(model: Any, dataset: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    from torch.utils.data import DataLoader

    model.encoder.eval()
    if model.head is not None:
        model.head.eval()
    embeddings, logits = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=passthrough):
        views = [{"graph": batch["graph"]}, {"graph": batch["graph_k"]}]
        features = [model.encoder(v) for v in views]
        embeddings.append(sum(f["embedding"] for f in features).div(2).numpy())
        if model.head is not None:
            logits.append(sum(model.head(f, batch) for f in features).div(2).numpy())
    return np.concatenate(embeddings), (np.concatenate(logits) if logits else None)


def _write(destination: Path, stem: str, ids: np.ndarray, emb: np.ndarray,
           logits: np.ndarray | None, fmt: str, key: str) -> list[Path]:
    destination.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        written = [destination / f"{stem}.embeddings.npy", destination / f"{stem}.{key}s.txt"]
        with atomic_path(written[0]) as tmp:
            np.save(tmp, emb.astype(np.float32))
        with atomic_path(written[1]) as tmp:
            tmp.write_text("\n".join(map(str, ids)) + "\n")
        if logits is not None:
            written.append(destination / f"{stem}.predictions.npy")
            with atomic_path(written[-1]) as tmp:
                np.save(tmp, logits.argmax(1))
        return written
    import pandas as pd

    frame = pd.DataFrame(emb.astype(np.float32), columns=[f"emb_{i}" for i in range(emb.shape[1])])
    frame.insert(0, key, [str(i) for i in ids])
    if logits is not None:
        frame.insert(1, "prediction", logits.argmax(1))
    path = destination / f"{stem}.embeddings.parquet"
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return [path]


def build_predictor(*, level: Literal["node", "graph"] = "node",
                    format: Literal["parquet", "npy"] = "parquet", seed: int = 0,
                    batch_size: int = 64) -> Callable[[Any, Path, Path], list[Path]]:
    """Embed the nodes of an edge list, or each edge list as a graph."""
    if level not in ("node", "graph") or format not in ("parquet", "npy"):
        raise DomainfmError(f"graph.embed: level must be node|graph and format parquet|npy, "
                            f"got {level!r}, {format!r}")

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        sampling = _sampling(model, seed)
        files = _sources(Path(source))
        if level == "node":
            written = []
            for path in files:
                graph = read_edgelist(path)
                collection = GraphCollection([graph])
                nodes = np.arange(graph.num_nodes)
                dataset = NodeInstances(collection, nodes, np.full(len(nodes), -1), True, **sampling)
                emb, logits = _run(model, dataset, batch_size)
                written += _write(Path(destination), path.stem, graph.names, emb, logits, format, "node")
            return written
        graphs: list[Graph] = [read_edgelist(p) for p in files]
        collection = GraphCollection(graphs)
        ids = np.arange(len(graphs))
        dataset = GraphInstances(collection, ids, np.full(len(ids), -1), True, **sampling)
        emb, logits = _run(model, dataset, batch_size)
        stem = Path(source).stem
        return _write(Path(destination), stem, np.array([p.stem for p in files]), emb, logits,
                      format, "graph")

    return run


def example(folder: Path) -> Path:
    """Zachary's karate club as an edge list."""
    return write_edgelist(from_networkx(nx.karate_club_graph(), "karate"), Path(folder) / "karate.edgelist")
