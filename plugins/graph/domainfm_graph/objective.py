"""GCC's pretraining objective: InfoNCE between two views of the same instance.

Two ways to get negatives, as in the paper: ``e2e`` contrasts each query with the other keys of
the batch, all encoded by the trained encoder (the paper's best fine-tuned numbers); ``moco``
encodes keys with a momentum copy of the encoder and contrasts against a queue of past keys,
which decouples the number of negatives from the batch size. Temperature 0.07. Under data
parallelism every rank enqueues the keys of all ranks, as MoCo does, so the queue holds the
negatives of the whole global batch and is the same on every rank.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from domainfm.errors import ConfigError
from domainfm.records import Fraction, PositiveFloat, PositiveInt


class GCCObjective(nn.Module):
    """``forward(encoder, batch)`` with ``batch["graph"]`` (queries) and ``batch["graph_k"]`` (keys)."""

    def __init__(self, encoder: nn.Module, *, mode: Literal["e2e", "moco"] = "e2e",
                 temperature: float = 0.07, queue_size: int = 16384,
                 momentum: float = 0.999) -> None:
        super().__init__()
        if mode not in ("e2e", "moco"):
            raise ConfigError(f"objective.params.mode must be 'e2e' or 'moco', got {mode!r}")
        self.mode, self.temperature, self.momentum = mode, temperature, momentum
        # training steps seen; also gives every mode a state, so exports carry the objective
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        if mode == "moco":
            # the momentum encoder is the objective's own state, not the trained encoder
            self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
            dim = int(encoder.embed_dim)
            self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
            self.register_buffer("synced", torch.zeros((), dtype=torch.bool))

    def forward(self, encoder: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        q = encoder({"graph": batch["graph"]})["embedding"]
        if self.mode == "e2e":
            k = encoder({"graph": batch["graph_k"]})["embedding"]
            logits = q @ k.t() / self.temperature
        else:
            k = self._keys(encoder, batch)
            positive = (q * k).sum(-1, keepdim=True)
            logits = torch.cat([positive, q @ self.queue.clone().t()], dim=1) / self.temperature
        target = torch.arange(len(q), device=q.device) if self.mode == "e2e" else \
            torch.zeros(len(q), dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, target)
        if self.training:
            self.steps += 1
            if self.mode == "moco":
                self._enqueue(k)
        accuracy = (logits.argmax(1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy.detach()}

    @torch.no_grad()
    def _keys(self, encoder: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        if self.training:
            pairs = zip(self.key_encoder.parameters(), encoder.parameters())
            weight = torch.where(self.synced, self.momentum, 0.0)  # first step: copy the encoder
            for key, param in pairs:
                key.mul_(weight).add_(param.detach(), alpha=float(1 - weight))
            self.synced.fill_(True)
        # as GCC: the key encoder runs without dropout but with batch statistics
        self.key_encoder.eval()
        for module in self.key_encoder.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(self.training)
        return self.key_encoder({"graph": batch["graph_k"]})["embedding"]

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        keys = gather_ranks(keys.detach())
        size = self.queue.shape[0]
        ptr = int(self.queue_ptr)
        index = (torch.arange(len(keys), device=keys.device) + ptr) % size
        self.queue[index] = keys
        self.queue_ptr.fill_((ptr + len(keys)) % size)


def gather_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` of every rank concatenated in rank order (itself outside data parallelism).
    Ranks hold equal batch sizes: the distributed sampler pads every rank to the same count."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def build_objective(encoder: nn.Module, *, mode: Literal["e2e", "moco"] = "e2e",
                    temperature: PositiveFloat = 0.07, queue_size: PositiveInt = 16384,
                    momentum: Fraction = 0.999) -> GCCObjective:
    """GCC InfoNCE; ``mode`` picks in-batch (``e2e``) or MoCo negatives."""
    return GCCObjective(encoder, mode=mode, temperature=temperature, queue_size=queue_size,
                        momentum=momentum)
