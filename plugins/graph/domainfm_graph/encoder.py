"""GCC's encoder: a GIN over the sampler's features, with GIN's layer-wise sum readout.

Input per node: the eigenvector features (``pos_dim``), a learned embedding of the node's degree
inside its subgraph (clamped at ``max_degree``) and the seed bit. Each GINConv sums neighbours,
applies a 2-layer MLP (Linear-BN-ReLU-Linear), then BN and ReLU twice as DGL's GIN (which GCC
uses) does. The readout sum-pools every layer's node states, the input included, maps each
through its own linear layer and adds them up; the output is L2-normalised, because the
contrastive loss compares directions.

An instance may come as several RWR views (``graph``, ``graph_k``, ``graph_more``: a labelled
item's evaluation views, see ``eval_views`` of the datasets): its embedding is then the mean of
the views' embeddings, as GCC's frozen protocol embeds a node (under a linear head, the mean of
the views' logits). The objective encodes its query and key views one at a time.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domainfm.errors import ConfigError, DataError
from domainfm.records import Fraction, PositiveInt

from domainfm_graph.presets import PRESETS
from domainfm_graph.pyg import GINConv, global_add_pool, to_dense_batch


class GCCEncoder(nn.Module):
    """GIN encoder of subgraph instances; ``forward(batch)`` reads ``batch["graph"]`` (and
    averages the embedding over ``graph_k`` and ``graph_more`` when the batch has them)."""

    def __init__(self, *, hidden_dim: int = 64, output_dim: int = 64, num_layers: int = 4,
                 degree_dim: int = 16, max_degree: int = 512, pos_dim: int = 32,
                 dropout: float = 0.5, norm: bool = True) -> None:
        super().__init__()
        self.pos_dim, self.max_degree, self.norm = pos_dim, max_degree, norm
        self.embed_dim = output_dim
        self.degree_embedding = nn.Embedding(max_degree + 1, degree_dim)
        in_dim = pos_dim + degree_dim + 1
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(num_layers):
            width = in_dim if layer == 0 else hidden_dim
            apply = nn.Sequential(  # plain nn.Linear so that LoRA can adapt them
                nn.Linear(width, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
            self.convs.append(GINConv(apply, eps=0.0, train_eps=False, aggr="add"))
            self.norms.append(nn.BatchNorm1d(hidden_dim))
        self.readout = nn.ModuleList(
            [nn.Linear(in_dim if i == 0 else hidden_dim, output_dim) for i in range(num_layers + 1)])
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = self.encode(batch["graph"])
        more = ([batch["graph_k"]] if "graph_k" in batch else []) + list(batch.get("graph_more", ()))
        if more:
            views = [out["embedding"], *(self.encode(g)["embedding"] for g in more)]
            out["embedding"] = torch.stack(views).mean(0)
        return out

    def encode(self, graph: Any) -> dict[str, Any]:
        """One view: the embedding of each instance, and the first view's node states."""
        if graph.x.shape[-1] != self.pos_dim:
            raise DataError(f"the encoder expects {self.pos_dim} eigenvector features per "
                                f"node, the data gives {graph.x.shape[-1]} (data.params.pos_dim)")
        degree = self.degree_embedding(graph.degree.clamp(max=self.max_degree))
        h = torch.cat([graph.x, degree, graph.seed.unsqueeze(-1).to(graph.x.dtype)], dim=-1)
        size = int(graph.ptr.numel() - 1)
        pooled = self.dropout(self.readout[0](global_add_pool(h, graph.batch, size)))
        for conv, norm, read in zip(self.convs, self.norms, self.readout[1:]):
            h = F.relu(norm(conv(h, graph.edge_index)))
            pooled = pooled + self.dropout(read(global_add_pool(h, graph.batch, size)))
        embedding = F.normalize(pooled, p=2, dim=-1, eps=1e-5) if self.norm else pooled
        tokens, mask = to_dense_batch(h, graph.batch, batch_size=size)
        return {"embedding": embedding, "tokens": tokens, "mask": mask, "nodes": h}


def build_encoder(preset: str = "tiny", *, hidden_dim: PositiveInt | None = None,
                  output_dim: PositiveInt | None = None, num_layers: PositiveInt | None = None,
                  degree_dim: PositiveInt | None = None, max_degree: PositiveInt | None = None,
                  pos_dim: PositiveInt | None = None, dropout: Fraction | None = None,
                  norm: bool | None = None) -> GCCEncoder:
    """The GIN encoder from a named preset (``tiny`` or the paper's ``gcc``); given values override."""
    given = dict(locals())
    if preset not in PRESETS:
        raise ConfigError(f"unknown graph.gcc_gin preset {preset!r}; choose from {sorted(PRESETS)}")
    overrides = {k: v for k, v in given.items() if k != "preset" and v is not None}
    return GCCEncoder(**{**PRESETS[preset], **overrides})
