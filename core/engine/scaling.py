"""Scale-out options of a run, applied to any plugin's model without plugin code.

All are ``trainer`` options of the run config (``--set trainer.<name>=...`` on the CLI):

``strategy``
    Passed to Lightning: ``auto``, ``ddp`` (gloo on CPU, nccl on GPU), ``ddp_spawn``, or
    ``fsdp``. For ``fsdp`` the host builds Lightning's ``FSDPStrategy`` with an auto-wrap
    policy on the encoder's transformer block class (found by :func:`block_class`), so each
    block is its own FSDP unit; ``fsdp_sharding`` picks the sharding strategy
    (``FULL_SHARD``, ``SHARD_GRAD_OP``, ``HYBRID_SHARD``, ``NO_SHARD``) and
    ``fsdp_state_dict`` whether checkpoints hold full (default, loadable anywhere) or sharded
    weights. FSDP is meant for the large presets (``geospatial.prithvi`` eo2_300m/eo2_600m,
    ``medical.bmmae`` base) on GPUs: Lightning's FSDP runs on CUDA only, so asking for it on a
    CPU is a config error before anything is written (use ``ddp`` there).
``precision``
    Lightning precision: ``32-true`` (default), ``bf16-mixed`` (GPUs with bf16, and CPU),
    ``16-mixed``. Under FSDP, ``bf16-mixed`` becomes FSDP's own mixed-precision policy.
``activation_checkpointing``
    Recompute each encoder block's activations in the backward pass instead of storing them
    (``torch.utils.checkpoint``, non-reentrant): less memory, about a third more compute.
    Under FSDP the strategy's own checkpoint wrapper is used on the same block class.
    Checkpoints and exports are unchanged (the parameter names stay the same).
``compile``
    ``torch.compile`` the encoder in place (``nn.Module.compile``: parameter names unchanged).
    The first steps are slow while it compiles.
``ddp_find_unused_parameters``
    Under ``ddp``, let a training step leave some parameters without a gradient (for example
    an objective that only uses some of the encoder's modality embeddings): DDP then finds
    them each step, which costs time; leave it off when every parameter is always used.
``accumulate_grad_batches``
    Gradient accumulation over that many batches per optimiser step (Lightning's own; under
    DDP the gradient all-reduce only happens on the last of them).

The encoder's blocks are found generically: an attribute ``blocks`` (a ``ModuleList`` or
``Sequential``, or a module such as ``nn.TransformerEncoder`` holding one as ``layers``),
else the longest ``ModuleList``/``Sequential`` in the encoder whose children share one type.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from domainfm.config import ConfigError, TrainerConfig


def _container_children(container: nn.Module) -> list[nn.Module] | None:
    if isinstance(container, (nn.ModuleList, nn.Sequential)) and len(container) > 0:
        return list(container)
    for name in ("layers", "blocks", "layer"):
        inner = getattr(container, name, None)
        if isinstance(inner, (nn.ModuleList, nn.Sequential)) and len(inner) > 0:
            return list(inner)
    return None


def encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The repeated blocks of an encoder (see the module docstring); ``[]`` when there are none."""
    blocks = getattr(encoder, "blocks", None)
    if isinstance(blocks, nn.Module):
        found = _container_children(blocks)
        if found:
            return found
    best: list[nn.Module] = []
    for module in encoder.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) > len(best):
            children = list(module)
            if len({type(c) for c in children}) == 1 and any(True for _ in children[0].parameters()):
                best = children
    return best


def block_class(encoder: nn.Module) -> type[nn.Module] | None:
    """The class of the encoder's repeated block, used as the FSDP wrapping unit."""
    blocks = encoder_blocks(encoder)
    return type(blocks[0]) if blocks else None


def _checkpointed(original: Any, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    if module.training and torch.is_grad_enabled():
        return checkpoint(original, *args, use_reentrant=False, **kwargs)
    return original(*args, **kwargs)


def enable_activation_checkpointing(encoder: nn.Module) -> int:
    """Make every encoder block recompute its activations in backward; returns how many.

    The block's ``forward`` is replaced on the instance, so parameter names (and therefore
    checkpoints and exports) do not change.
    """
    blocks = encoder_blocks(encoder)
    if not blocks:
        raise ConfigError(
            f"trainer.activation_checkpointing: {type(encoder).__name__} has no repeated blocks "
            "(an attribute 'blocks' or a ModuleList of one block type)")
    for block in blocks:
        if not getattr(block, "_domainfm_checkpointed", False):
            block.forward = functools.partial(_checkpointed, block.forward, block)
            block._domainfm_checkpointed = True
    return len(blocks)


def _strategy_name(strategy: Any) -> str:
    return strategy.lower() if isinstance(strategy, str) else ""


def fsdp_strategy(t: TrainerConfig, encoder: nn.Module) -> Any:
    """Lightning's ``FSDPStrategy`` wrapping each encoder block (and checkpointing it if asked)."""
    from lightning.pytorch.strategies import FSDPStrategy

    cls = block_class(encoder)
    if cls is None:
        raise ConfigError(f"trainer.strategy=fsdp: {type(encoder).__name__} has no repeated "
                          "blocks to wrap (an attribute 'blocks' or a ModuleList of one block type)")
    options: dict[str, Any] = dict(auto_wrap_policy={cls}, sharding_strategy=t.fsdp_sharding,
                                   state_dict_type=t.fsdp_state_dict)
    if t.activation_checkpointing:
        options["activation_checkpointing_policy"] = {cls}
    return FSDPStrategy(**options)


def _is_fsdp(t: TrainerConfig) -> bool:
    return _strategy_name(t.strategy) in ("fsdp", "fsdp_full_shard", "fsdp_shard_grad_op")


def check_scaling(t: TrainerConfig) -> None:
    """Refuse option combinations Lightning would reject mid-setup, before anything is written."""
    if _is_fsdp(t):
        on_cpu = str(t.accelerator).lower() == "cpu" or (
            str(t.accelerator).lower() == "auto" and not torch.cuda.is_available())
        if on_cpu:
            raise ConfigError(f"trainer.strategy={t.strategy} needs GPUs (Lightning's FSDP runs on "
                              f"CUDA only), but trainer.accelerator={t.accelerator!r} "
                              "runs on CPU here: use trainer.strategy=ddp on CPU")


def apply_scaling(t: TrainerConfig, module: nn.Module | None) -> dict[str, Any]:
    """Prepare ``module`` for the run's scaling options; returns Trainer overrides (strategy).

    Called by the host before ``Trainer.fit``; ``module`` is the LightningModule whose
    ``encoder`` attribute is the plugin's encoder.
    """
    overrides: dict[str, Any] = {}
    encoder = getattr(module, "encoder", None) if module is not None else None
    if _is_fsdp(t):
        if encoder is None:
            raise ConfigError("trainer.strategy=fsdp needs a model with an encoder")
        overrides["strategy"] = fsdp_strategy(t, encoder)
    elif t.activation_checkpointing and encoder is not None:
        enable_activation_checkpointing(encoder)
    if t.ddp_find_unused_parameters and _strategy_name(t.strategy) in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        overrides["strategy"] = DDPStrategy(
            find_unused_parameters=True,
            start_method="spawn" if _strategy_name(t.strategy) == "ddp_spawn" else "popen")
    if t.compile and encoder is not None:
        encoder.compile()
    return overrides
