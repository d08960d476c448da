"""AdamW with linear warmup and cosine decay, stepped once per optimiser step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from domainfm.config import OptimConfig


def default_param_groups(model: nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: decayed weights, and biases/norms/tokens without decay.

    Parameters under a ``head`` attribute get ``optim.head_lr_scale`` times the learning rate.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or name.endswith((".bias", "token", "tokens"))
        is_head = name.startswith("head.")
        groups.setdefault((no_decay, is_head), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else optim.weight_decay,
            "lr": optim.lr * (optim.head_lr_scale if is_head else 1.0),
        }
        for (no_decay, is_head), params in sorted(groups.items())
    ]


def warmup_cosine(total_steps: int, warmup: float, schedule: str, min_ratio: float):
    """The multiplier of the base learning rate at each step."""
    warmup_steps = int(warmup * total_steps) if warmup < 1 else int(warmup)
    total_steps = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def adamw(params: Any, fused: bool = True, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW with its fused kernel (one pass per tensor for the whole update) where torch has one.

    Otherwise the multi-tensor ``foreach`` form: torch picks it by itself on GPUs but a
    per-parameter loop on CPU. On CPU the fused kernel takes a quarter of ``foreach``'s time
    (about 60 instead of 280 ms per step for an 80M-parameter ViT-B on 2 cores).
    """
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = fused and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
    return torch.optim.AdamW(params, fused=fused, foreach=None if fused else True, **kwargs)


def build_optimizer(model: nn.Module, optim: OptimConfig, total_steps: int,
                    param_groups: list[dict[str, Any]] | None = None, fused: bool = True) -> dict[str, Any]:
    groups = param_groups or default_param_groups(model, optim)
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = adamw(groups, fused=fused, lr=optim.lr, betas=tuple(optim.betas),
                      weight_decay=optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, optim.warmup, optim.schedule, optim.min_lr_ratio)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
