"""Run in spawned processes by test_models: kept free of heavy imports (no PyG, no sklearn),
so that each of the two ranks starts in a few seconds."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from domainfm_graph.objective import build_objective


class KeyEncoder(nn.Linear):
    """Stands in for the GIN: MoCo's queue only needs the encoder's ``embed_dim``."""

    embed_dim = 16

    def __init__(self) -> None:
        super().__init__(4, self.embed_dim)


def enqueue_on_rank(rank: int, address: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=address, rank=rank, world_size=2)
    torch.manual_seed(0)
    objective = build_objective(KeyEncoder(), mode="moco", queue_size=8)
    keys = torch.full((2, objective.queue.shape[1]), float(rank + 1))
    objective._enqueue(keys)
    torch.save({"queue": objective.queue, "ptr": objective.queue_ptr}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
