"""The verbs of domainfm as plain Python functions; the CLI only parses arguments and calls these.

Every function takes an optional :class:`~domainfm.host.Host` (the CLI passes one built with
its ``--disable-plugin`` options; by default a new one is discovered) and opens a
:class:`~domainfm.session.Session` with it. A run validates its whole config and its data
against the installed plugins before it writes or trains anything, then writes a run folder::

    <output_dir>/config.yaml      the resolved config (defaults filled in)
    <output_dir>/metrics.csv      every logged value by step (Lightning's CSV logger)
    <output_dir>/metrics.json     final values and the first/last training loss
    <output_dir>/loss_curve.png   training and validation loss
    <output_dir>/checkpoints/     Lightning checkpoints holding the model specification
                                  (last.ckpt resumes with --resume)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from domainfm.config import ConfigError, RunConfig
from domainfm.engine.modules import FinetuneModule, PretrainModule
from domainfm.engine.trainer import build_trainer, epoch_seeded_loader
from domainfm.errors import DomainfmError
from domainfm.host import Host
from domainfm.io import atomic_write_text
from domainfm.model import Model, load_model as _load_model, write_export
from domainfm.plots import plot_loss_curves, read_history
from domainfm.schema import did_you_mean
from domainfm.session import Session
from domainfm.spec import ModelSpec
from domainfm.weights import read_checkpoint

ConfigSource = str | os.PathLike[str] | dict[str, Any] | RunConfig


@dataclass
class RunResult:
    """What a pretraining, fine-tuning or evaluation run produced."""

    run_dir: Path
    metrics: dict[str, float]
    checkpoint: Path | None = None
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    module: pl.LightningModule | None = None
    spec: ModelSpec | None = None


# --------------------------------------------------------------------------- training


def pretrain(config: ConfigSource, overrides: Sequence[str] = (), *, host: Host | None = None,
             callbacks: Sequence[pl.Callback] = ()) -> RunResult:
    """Pretrain an encoder with a self-supervised objective on a plugin's data."""
    session = Session.open("pretrain", config, overrides, host)
    _seed(session)
    model = session.build_model()
    module = PretrainModule(model.encoder, model.objective, session.config.optim, model.spec)
    return _fit(session, module, callbacks)


def finetune(config: ConfigSource, overrides: Sequence[str] = (), *, host: Host | None = None,
             callbacks: Sequence[pl.Callback] = ()) -> RunResult:
    """Fine-tune an encoder (pretrained when ``init`` is set) with a task head."""
    session = Session.open("finetune", config, overrides, host)
    _seed(session)
    model = session.build_model()
    module = FinetuneModule(model.encoder, model.head, session.build_metrics(),
                            session.config.optim, model.spec)
    return _fit(session, module, callbacks)


def _seed(session: Session) -> None:
    pl.seed_everything(session.config.seed, workers=True, verbose=False)


def _fit(session: Session, module: pl.LightningModule, callbacks: Sequence[pl.Callback]) -> RunResult:
    config, host, stage = session.config, session.host, session.verb
    module.param_groups = host.hook.domainfm_param_groups(stage=stage, module=module, config=config)
    hook_callbacks: list[pl.Callback] = list(callbacks)
    host.hook.domainfm_configure_run(stage=stage, config=config, callbacks=hook_callbacks)
    with session.removing_run_dir_on_error():
        session.write_config()
        trainer = build_trainer(config, session.run_dir, hook_callbacks, module)
        if config.trainer.deterministic:
            epoch_seeded_loader(session.datamodule, config.seed)
        getattr(host.hook, f"domainfm_before_{stage}")(config=config, module=module)
        trainer.fit(module, datamodule=session.datamodule, ckpt_path=config.resume)
    metrics = _floats(trainer.callback_metrics)
    getattr(host.hook, f"domainfm_after_{stage}")(config=config, module=module, metrics=metrics)
    return _finish(trainer, session, metrics, session.run_dir / "checkpoints" / "last.ckpt", module)


def evaluate(config: ConfigSource, overrides: Sequence[str] = (), *,
             host: Host | None = None) -> RunResult:
    """Score a model (``init``: export, run folder or .ckpt) on a dataset's test split.

    ``data`` defaults to the dataset the model was trained on; ``evaluate.split: val`` scores
    the validation split instead. The model's own head is used. A model without one (a
    pretraining export) takes the config's ``head``, built on its encoder, so it is scored
    without fine-tuning (zero-shot, for example a forecaster whose head starts from the
    pretraining decoder); with no ``head`` named, its objective's loss on the split is the score
    (``test_loss``: the masked reconstruction error of a masked autoencoder, say).
    """
    session = Session.open("evaluate", config, overrides, host)
    _seed(session)
    model = session.build_model()
    if model.head is None:  # a pretraining model: the loss of its objective on held-out data
        module = PretrainModule(model.encoder, model.objective, session.config.optim, model.spec)
    else:
        module = FinetuneModule(model.encoder, model.head, session.build_metrics(),
                                session.config.optim, model.spec)
    with session.removing_run_dir_on_error():
        session.write_config()
        trainer = build_trainer(session.config, session.run_dir, [])
        run = trainer.test if session.config.evaluate.split == "test" else trainer.validate
        run(module, datamodule=session.datamodule, verbose=False)
    return _finish(trainer, session, _floats(trainer.callback_metrics), None, module)


def _finish(trainer: pl.Trainer, session: Session, metrics: dict[str, float],
            checkpoint: Path | None, module: pl.LightningModule) -> RunResult:
    run_dir = session.run_dir
    history = read_history(run_dir / "metrics.csv") if trainer.is_global_zero else {}
    if trainer.is_global_zero:
        summary: dict[str, Any] = {"final": metrics}
        losses = history.get("train_loss") or history.get("train_loss_step") or []
        if losses:
            summary.update(first_train_loss=losses[0][1], last_train_loss=losses[-1][1])
        kept = trainer.checkpoint_callback
        if kept is not None and kept.monitor and kept.best_model_score is not None:
            summary["best"] = {"monitor": kept.monitor, "score": float(kept.best_model_score),
                               "checkpoint": Path(kept.best_model_path).name}
        atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=2))
        plot_loss_curves(history, run_dir / "loss_curve.png")
    return RunResult(run_dir, metrics, checkpoint if checkpoint and checkpoint.exists() else None,
                     history, module, session.spec)


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if not k.startswith("lr-")
            and (isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1))}


# --------------------------------------------------------------------------- models


def load_model(source: str | os.PathLike[str], host: Host | None = None) -> Model:
    """Rebuild a model from an export folder, a run folder or a Lightning checkpoint."""
    return _load_model(source, host or Host())


def load_encoder(source: str | os.PathLike[str], host: Host | None = None) -> nn.Module:
    """The encoder of an export folder, run folder or checkpoint, weights loaded, in eval mode."""
    return load_model(source, host).encoder


def export(source: str | os.PathLike[str], destination: str | os.PathLike[str], *,
           merge_lora: bool = True, overwrite: bool = False, host: Host | None = None) -> Path:
    """Write an export folder (config.json, model.safetensors, README.md) from a run or checkpoint.

    Adapters are merged into plain weights unless ``merge_lora`` is False.
    """
    host = host or Host()
    checkpoint = read_checkpoint(Path(source))
    model = _load_model(checkpoint, host)
    return write_export(model, destination, host, results=checkpoint.results,
                        merge_adapters=merge_lora, overwrite=overwrite)


def predict(model: str | os.PathLike[str] | Model, source: str | os.PathLike[str],
            destination: str | os.PathLike[str], *, predictor: str | None = None,
            params: dict[str, Any] | None = None, host: Host | None = None) -> list[Path]:
    """Run a model on domain files (``source``) and write its predictions under ``destination``."""
    host = host or Host()
    if not isinstance(model, Model):
        model = _load_model(model, host)
    record = _predictor_for(model, predictor, host)
    run = record.build(**(params or {}))
    return list(run(model, Path(source), Path(destination)))


def _predictor_for(model: Model, name: str | None, host: Host) -> Any:
    if name:
        return host.get("predictor", name)
    data = model.spec.provenance.data.name if model.spec.provenance.data else None
    plugin = model.spec.plugin
    stage = "finetune" if model.head is not None else "pretrain"
    usable = [r for r in host.components("predictor") if r.stage == stage]
    candidates = [r for r in usable if r.dataset == data] or \
                 [r for r in usable if r.plugin == plugin]
    if len(candidates) != 1:
        names = [r.name for r in host.components("predictor") if r.plugin == plugin]
        raise ConfigError(f"choose a predictor for this model (predict.name).{did_you_mean('', names)}")
    return candidates[0]


def predict_from_config(config: ConfigSource, overrides: Sequence[str] = (), *,
                        host: Host | None = None) -> list[Path]:
    """``domainfm predict --config``: ``init`` is the model, ``predict`` says what to read and write."""
    session = Session.open("predict", config, overrides, host)
    p = session.config.predict
    model = session.build_model()
    record = _predictor_for(model, p.name, session.host)
    return list(record.build(**p.params)(model, Path(p.input), Path(p.output)))


def pack(dataset: str, destination: str | os.PathLike[str], params: dict[str, Any] | None = None,
         **options: Any) -> Path:
    """Pack a dataset's train/val samples into tar shards for ``streaming.shards``.

    See :func:`domainfm.streaming.shards.pack` for ``splits``, ``samples_per_shard``,
    ``shard_bytes``, ``overwrite`` and ``host``.
    """
    from domainfm.streaming.shards import pack as pack_shards

    return pack_shards(dataset, destination, params, **options)


__all__ = [
    "DomainfmError", "RunResult", "evaluate", "export", "finetune", "load_encoder", "load_model",
    "pack", "predict", "predict_from_config", "pretrain",
]
