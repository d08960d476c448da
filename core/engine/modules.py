"""The two LightningModules every plugin trains through: pretraining and fine-tuning.

They know nothing of any domain: an objective turns (encoder, batch) into a loss, a head turns
features into predictions and a loss, metrics are torchmetrics. Everything else (devices,
precision, accumulation, clipping, checkpoints, DDP/FSDP) is Lightning's job.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from domainfm.config import OptimConfig
from domainfm.engine.optim import build_optimizer
from domainfm.spec import ModelSpec


def batch_size_of(batch: Any) -> int:
    """The leading dimension of the first tensor in a batch (Lightning needs it for logging)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim:
                return int(value.shape[0])
        for value in batch.values():
            if hasattr(value, "num_graphs"):  # PyG batches
                return int(value.num_graphs)
    if hasattr(batch, "num_graphs"):
        return int(batch.num_graphs)
    return 1


def _scalars(prefix: str, values: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[f"{prefix}/{key}"] = value.detach().float().reshape(())
        elif isinstance(value, (int, float)):
            out[f"{prefix}/{key}"] = torch.tensor(float(value))
    return out


class _Base(pl.LightningModule):
    def __init__(self, optim: OptimConfig, spec: ModelSpec | None = None) -> None:
        super().__init__()
        self.optim_config = optim
        self.param_groups: list[dict[str, Any]] | None = None  # set by domainfm_param_groups
        self.spec = spec  # stored in every checkpoint, so a run folder loads like an export

    def configure_optimizers(self) -> Any:
        trainer = self._trainer
        total = int(trainer.estimated_stepping_batches) if trainer else 1
        # Lightning's mixed-precision plugin will not clip the gradients of a fused optimiser
        clips_mixed = bool(trainer and trainer.gradient_clip_val and "mixed" in str(trainer.precision))
        return build_optimizer(self, self.optim_config, total, self.param_groups, fused=not clips_mixed)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.spec is not None:
            checkpoint["domainfm"] = {"spec": self.spec.to_dict()}


class PretrainModule(_Base):
    """Encoder + pretraining objective."""

    def __init__(self, encoder: nn.Module, objective: nn.Module, optim: OptimConfig,
                 spec: ModelSpec | None = None) -> None:
        super().__init__(optim, spec)
        self.encoder = encoder
        self.objective = objective

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.objective(self.encoder, batch)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        out = self(batch)
        loss = out["loss"]
        logs = _scalars(stage, {k: v for k, v in out.items() if k != "loss"})
        if logs:
            self.log_dict(logs, batch_size=batch_size_of(batch), sync_dist=stage != "train")
        self.log(f"{stage}_loss", loss.detach(), prog_bar=True, batch_size=batch_size_of(batch),
                 sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")


class FinetuneModule(_Base):
    """Encoder + task head + loss + metrics.

    An encoder left without any trainable parameter (a linear probe, or an adapter that froze
    it) is frozen: kept in eval mode, so it keeps its normalisation statistics, and run without
    gradients.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, metrics: dict[str, Metric],
                 optim: OptimConfig, spec: ModelSpec | None = None) -> None:
        super().__init__(optim, spec)
        self.encoder = encoder
        self.head = head
        self.frozen_encoder = not any(p.requires_grad for p in encoder.parameters())
        collection = MetricCollection(dict(metrics)) if metrics else None
        self.val_metrics = collection.clone(prefix="val/") if collection else None
        self.test_metrics = collection.clone(prefix="test/") if collection else None

    def train(self, mode: bool = True) -> FinetuneModule:
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.frozen_encoder:
            with torch.no_grad():
                features = self.encoder(batch)
        else:
            features = self.encoder(batch)
        return self.head(features, batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.head.loss(self(batch), batch)
        self.log("train_loss", loss.detach(), prog_bar=True, batch_size=batch_size_of(batch))
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str, metrics: MetricCollection | None) -> None:
        predictions = self(batch)
        loss = self.head.loss(predictions, batch)
        self.log(f"{stage}_loss", loss.detach(), prog_bar=True, batch_size=batch_size_of(batch),
                 sync_dist=True)
        if metrics is not None:
            # metrics whose update() takes `batch` get it (e.g. MASE needs the history)
            metrics.update(predictions, batch["target"], batch=batch)

    def _log_metrics(self, metrics: MetricCollection | None) -> None:
        if metrics is None:
            return
        self.log_dict(flatten_metrics(metrics.compute()), sync_dist=False)
        metrics.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)


def flatten_metrics(values: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Scalars as they are; vectors (per-class scores) as ``name/0``, ``name/1``...; dicts by key."""
    flat: dict[str, torch.Tensor] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_metrics({f"{key}/{k}": v for k, v in value.items()}))
        elif isinstance(value, torch.Tensor) and value.numel() > 1:
            for i, v in enumerate(value.flatten()):
                flat[f"{key}/{i}"] = v.float()
        elif isinstance(value, torch.Tensor):
            flat[key] = value.float().reshape(())
        else:
            flat[key] = torch.tensor(float(value))
    return flat
