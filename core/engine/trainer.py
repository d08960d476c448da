"""Build the Lightning Trainer for a run: devices, strategy, precision, checkpoints, logs.

Lightning already writes checkpoints through an fsspec transaction (temporary file, then move),
so a killed run never leaves a half-written ``.ckpt``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from domainfm.config import RunConfig
from domainfm.engine.scaling import apply_scaling


class EpochSeed(pl.Callback):
    """Deterministic mode: each epoch's randomness is a function of (seed, epoch, rank) alone.

    Every RNG is reseeded at the start of each epoch, and (see :func:`epoch_seeded_loader`)
    the training order comes from the seed and the epoch number rather than the global RNG, so
    a run resumed from an end-of-epoch checkpoint ends with the same weights as an
    uninterrupted one.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch * 7919 + trainer.global_rank) % 2**31
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


def epoch_seeded_loader(datamodule: pl.LightningDataModule, seed: int) -> None:
    """Make a single-process shuffled train loader's order depend on (seed, epoch) only.

    A plain ``shuffle=True`` loader draws its order (and a worker seed) from the global RNG
    when its iterator is created, which Lightning does at different moments in fresh and
    resumed runs. Swapping in a one-replica ``DistributedSampler`` (ordered by seed and the
    epoch Lightning sets) and a private generator removes that dependence. Under DDP Lightning
    installs its own ``DistributedSampler`` and this does nothing.
    """
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    original = datamodule.train_dataloader

    def train_dataloader() -> Any:
        loader = original()
        trainer = datamodule.trainer
        if (isinstance(loader, DataLoader) and isinstance(loader.sampler, RandomSampler)
                and (trainer is None or trainer.world_size == 1)):
            sampler = DistributedSampler(loader.dataset, num_replicas=1, rank=0, shuffle=True,
                                         seed=seed)
            loader = _update_dataloader(loader, sampler)
            loader.generator = torch.Generator().manual_seed(seed)
        return loader

    datamodule.train_dataloader = train_dataloader  # type: ignore[method-assign]


def build_trainer(config: RunConfig, run_dir: Path, callbacks: list[pl.Callback],
                  module: pl.LightningModule | None = None, **overrides: Any) -> pl.Trainer:
    """The run's Trainer; given ``module``, the scaling options are applied to it first.

    See :mod:`domainfm.engine.scaling` for FSDP, bf16, activation checkpointing and compile.
    """
    t = config.trainer
    scaling = apply_scaling(t, module) if module is not None else {}
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", save_last=True, save_top_k=1,
        filename="best" if t.checkpoint_monitor else "{epoch}-{step}",
        monitor=t.checkpoint_monitor, mode=t.checkpoint_mode,
        every_n_train_steps=t.checkpoint_every_n_steps,
    )
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    options: dict[str, Any] = dict(
        default_root_dir=run_dir,
        max_steps=t.max_steps,
        max_epochs=t.max_epochs if t.max_epochs is not None else (-1 if t.max_steps > 0 else 1),
        devices=t.devices,
        num_nodes=t.num_nodes,
        accelerator=t.accelerator,
        strategy=t.strategy,
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        val_check_interval=t.val_check_interval,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        deterministic=t.deterministic,
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False,
        logger=CSVLogger(run_dir, name="", version=""),
        callbacks=[*([EpochSeed(config.seed)] if t.deterministic else []), checkpoint, LearningRateMonitor("step"), *callbacks],
    )
    options.update(scaling)
    options.update(overrides)
    return pl.Trainer(**options)
