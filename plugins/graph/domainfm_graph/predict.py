"""Embed graph files with a loaded model: node (or graph) embeddings as ``.npy`` or Parquet.

Node level: every node of an edge list gets the embedding of its ego subgraph (mean of two
RWR views, reproducible from ``seed``), plus the predicted class when the model has a head.
Graph level: each edge list (a file, or every ``*.edgelist``/``*.txt`` in a folder) is one graph.
The sampler settings and the default level come from the model's data specification
(``model.spec.data.task``: those of the data it was trained on), never from its training files.
Every input is read and checked before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
import torch

from domainfm.errors import DataError
from domainfm.io import atomic_path
from domainfm.records import BadInput, PositiveInt

from domainfm_graph.data.instances import GraphInstances, NodeInstances, loader
from domainfm_graph.io import from_networkx, read_edgelist, write_edgelist
from domainfm_graph.sampler import GraphCollection

SAMPLING = ("rw_hops", "restart_prob", "pos_dim", "max_degree")


def sampling_of(model: Any, seed: int) -> dict[str, Any]:
    """The sampler settings the model was trained with, from its data specification."""
    task = dict(model.spec.data.task)
    missing = [k for k in SAMPLING if k not in task]
    if missing:
        raise DataError(f"the model's data specification has no sampler settings {missing} "
                        "(was it trained on a graph dataset?)")
    return {"seed": seed, **{k: task[k] for k in SAMPLING}}


def _sources(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix in (".edgelist", ".txt"))
        if not files:
            raise DataError(f"folder {str(source)!r} holds no .edgelist or .txt edge lists")
        return files
    if not source.is_file():
        raise DataError(f"input {str(source)!r} does not exist")
    return [source]


@torch.no_grad()
def _run(model: Any, dataset: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    model.encoder.eval()
    if model.head is not None:
        model.head.eval()
    embeddings, logits = [], []
    for batch in loader(dataset, batch_size, False):
        features = model.encoder(batch)  # the mean over the batch's two views
        embeddings.append(features["embedding"].numpy())
        if model.head is not None:
            logits.append(model.head(features, batch).numpy())
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


def build_predictor(*, level: Literal["node", "graph"] | None = None,
                    format: Literal["parquet", "npy"] = "parquet", seed: int = 0,
                    batch_size: PositiveInt = 64) -> Callable[[Any, Path, Path], list[Path]]:
    """Embed the nodes of an edge list, or each edge list as a graph (``level``; default: the
    level of the data the model was trained on)."""
    if level not in (None, "node", "graph") or format not in ("parquet", "npy"):
        raise DataError(f"graph.embed: level must be node|graph and format parquet|npy, "
                        f"got {level!r}, {format!r}")

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        sampling = sampling_of(model, seed)
        files = _sources(Path(source))
        graphs = [read_edgelist(p) for p in files]  # every input is checked before any write
        if (level or model.spec.data.task.get("level", "node")) == "node":
            results = []
            for path, graph in zip(files, graphs):
                nodes = np.arange(graph.num_nodes)
                dataset = NodeInstances(GraphCollection([graph]), nodes, np.full(len(nodes), -1),
                                        2, **sampling)
                results.append((path.stem, graph.names, *_run(model, dataset, batch_size)))
            return [p for stem, ids, emb, logits in results
                    for p in _write(Path(destination), stem, ids, emb, logits, format, "node")]
        ids = np.arange(len(graphs))
        dataset = GraphInstances(GraphCollection(graphs), ids, np.full(len(ids), -1), 2,
                                 **sampling)
        emb, logits = _run(model, dataset, batch_size)
        return _write(Path(destination), Path(source).stem, np.array([p.stem for p in files]),
                      emb, logits, format, "graph")

    return run


def example(folder: Path) -> Path:
    """Zachary's karate club as an edge list."""
    return write_edgelist(from_networkx(nx.karate_club_graph(), "karate"), Path(folder) / "karate.edgelist")


def bad_inputs(folder: Path) -> list[BadInput]:
    """Edge lists the predictor must refuse with one line naming the file (or folder)."""
    folder = Path(folder)
    good = write_edgelist(from_networkx(nx.karate_club_graph(), "karate"), folder / "good.edgelist")
    lines = good.read_text().splitlines()
    good.unlink()
    cases: dict[str, bytes | None] = {
        "missing": None,
        "empty": b"# no edges here\n",
        "truncated": ("\n".join(lines[:20]) + "\n" + lines[20].split()[0]).encode(),
        "header line": ("source target\n" + "\n".join(lines) + "\n").encode(),
        "not text": bytes(range(256)) * 8,
        "only self-loops": b"1 1\n2 2\n3 3\n",
    }
    out = []
    for name, data in cases.items():
        path = folder / f"{name.replace(' ', '_').replace('-', '_')}.edgelist"
        if data is not None:
            path.write_bytes(data)
        out.append(BadInput(name, expect=path.name, source=str(path)))
    empty_folder = folder / "no_edge_lists"
    empty_folder.mkdir(exist_ok=True)
    (empty_folder / "notes.md").write_text("edge lists go here\n")
    out.append(BadInput("folder without edge lists", expect=empty_folder.name,
                        source=str(empty_folder)))
    return out
