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


class EpochSeed(pl.Callback):
    """Reseed every RNG at the start of each epoch from (seed, epoch, rank).

    This makes an epoch's randomness (shuffling, masks, augmentation) independent of what ran
    before it, so a run resumed from an end-of-epoch checkpoint continues exactly as an
    uninterrupted run would.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch * 7919 + trainer.global_rank) % 2**31
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


def build_trainer(config: RunConfig, run_dir: Path, callbacks: list[pl.Callback],
                  **overrides: Any) -> pl.Trainer:
    t = config.trainer
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="{epoch}-{step}", save_last=True, save_top_k=1,
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
        callbacks=[EpochSeed(config.seed), checkpoint, LearningRateMonitor("step"), *callbacks],
    )
    options.update(overrides)
    return pl.Trainer(**options)
