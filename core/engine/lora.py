"""LoRA adapters for any encoder's linear layers (the built-in ``lora`` plugin applies them).

``mode: lora`` wraps the encoder's ``nn.Linear`` layers (all of them, or those whose qualified
name matches one of ``lora.targets``) in :class:`LoRALinear`: the base weight is frozen and a
low-rank update ``B @ A * alpha / rank`` trains. ``B`` starts at zero, so an adapted encoder
computes exactly what the loaded one did; :func:`merge_lora` folds the update back into plain
``nn.Linear`` layers for export.
"""

from __future__ import annotations

import math
import re
import torch
from torch import nn

from domainfm.errors import DomainfmError


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"lora.rank must be >= 1, got {rank}")
        self.base = base.requires_grad_(False)
        self.scaling = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    @property
    def weight(self) -> torch.Tensor:  # code that reads `.weight` of a Linear keeps working
        return self.base.weight + self.delta()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta(self) -> torch.Tensor:
        return (self.lora_b @ self.lora_a) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x) @ self.lora_a.t()) @ self.lora_b.t()
        return self.base(x) + update * self.scaling

    def merged(self) -> nn.Linear:
        linear = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                           device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.delta())
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        return linear


def inject_lora(module: nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                targets: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Replace matching ``nn.Linear`` layers of ``module`` in place; return their names.

    Every other parameter of ``module`` is frozen, so only the adapters (and, in a fine-tuning
    run, the head) train.
    """
    patterns = [re.compile(t) for t in targets]
    chosen = [
        name for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and name
        and (not patterns or any(p.search(name) for p in patterns))
    ]
    if not chosen:
        what = f"matching {list(targets)}" if targets else "at all"
        raise DomainfmError(f"LoRA found no nn.Linear layer {what} in {type(module).__name__}")
    module.requires_grad_(False)
    for name in chosen:
        parent, _, leaf = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        setattr(owner, leaf, LoRALinear(getattr(owner, leaf), rank, alpha, dropout))
    return chosen


def merge_lora(module: nn.Module) -> int:
    """Fold every LoRA adapter in ``module`` into a plain ``nn.Linear``; return how many."""
    merged = 0
    for name, child in list(module.named_modules()):
        if isinstance(child, LoRALinear):
            parent, _, leaf = name.rpartition(".")
            owner = module.get_submodule(parent) if parent else module
            setattr(owner, leaf, child.merged())
            merged += 1
    return merged


def has_lora(module: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in module.modules())
