"""The verbs of domainfm as plain Python functions; the CLI only parses arguments and calls these.

Every run validates its whole config against the installed plugins before it writes or trains
anything, then writes a run folder::

    <output_dir>/config.yaml      the resolved config (defaults filled in)
    <output_dir>/metrics.csv      every logged value by step (Lightning's CSV logger)
    <output_dir>/metrics.json     final values and the first/last training loss
    <output_dir>/loss_curve.png   training and validation loss
    <output_dir>/checkpoints/     Lightning checkpoints (last.ckpt resumes with --resume)
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
from lightning.fabric.utilities.rank_zero import rank_zero_only
from torch import nn

from domainfm.components import (
    build_datamodule,
    build_encoder,
    build_metrics,
    build_with_encoder,
    resolve,
)
from domainfm.config import ConfigError, RunConfig, dump_config, load_config
from domainfm.engine.modules import FinetuneModule, PretrainModule
from domainfm.engine.scaling import check_scaling
from domainfm.engine.trainer import build_trainer, epoch_seeded_loader
from domainfm.export_folder import (
    ExportedModel,
    ExportError,
    load_parts,
    load_strict,
    read_export_config,
    read_weights,
    write_export,
)
from domainfm.host import DomainfmError, Host, get_host, did_you_mean
from domainfm.io import atomic_write_text
from domainfm.plots import plot_loss_curves, read_history

ConfigSource = str | os.PathLike[str] | dict[str, Any] | RunConfig


@dataclass
class RunResult:
    """What a pretraining, fine-tuning or evaluation run produced."""

    run_dir: Path
    metrics: dict[str, float]
    checkpoint: Path | None = None
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    module: pl.LightningModule | None = None


# --------------------------------------------------------------------------- training


def pretrain(config: ConfigSource, overrides: Sequence[str] = (), *, host: Host | None = None,
             callbacks: Sequence[pl.Callback] = ()) -> RunResult:
    """Pretrain an encoder with a self-supervised objective on a plugin's data."""
    host = host or get_host()
    config = resolve(host, load_config(config, tuple(overrides)), "pretrain")
    pl.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_datamodule(host, config.data)
    encoder = build_encoder(host, config.encoder)
    objective = build_with_encoder(host, "objective", config.objective, encoder)
    module = PretrainModule(encoder, objective, config.optim)
    return _fit("pretrain", config, module, datamodule, host, callbacks)


def finetune(config: ConfigSource, overrides: Sequence[str] = (), *, host: Host | None = None,
             callbacks: Sequence[pl.Callback] = ()) -> RunResult:
    """Fine-tune an encoder (pretrained when ``init`` is set) with a task head."""
    host = host or get_host()
    config = resolve(host, load_config(config, tuple(overrides)), "finetune")
    if config.init:
        source_weights(config.init)  # fail on a bad path before anything is built or written
    pl.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_datamodule(host, config.data)
    encoder = build_encoder(host, config.encoder)
    if config.init:
        load_strict(encoder, encoder_tensors(config.init), f"{config.init} (encoder)")
    host.hook.domainfm_adapt_encoder(encoder=encoder, config=config)
    head = build_with_encoder(host, "head", config.head, encoder)
    metrics = build_metrics(host, config.metrics)
    module = FinetuneModule(encoder, head, metrics, config.optim, config.mode)
    return _fit("finetune", config, module, datamodule, host, callbacks)


def _fit(stage: str, config: RunConfig, module: pl.LightningModule,
         datamodule: pl.LightningDataModule, host: Host,
         callbacks: Sequence[pl.Callback]) -> RunResult:
    run_dir = Path(config.output_dir)
    check_scaling(config.trainer)  # before the run folder is written
    module.run_info = {"stage": stage, "config": config.to_dict()}
    module.param_groups = host.hook.domainfm_param_groups(stage=stage, module=module, config=config)
    hook_callbacks: list[pl.Callback] = list(callbacks)
    host.hook.domainfm_configure_run(stage=stage, config=config, callbacks=hook_callbacks)
    _write_config(config, run_dir)
    trainer = build_trainer(config, run_dir, hook_callbacks, module)
    if config.trainer.deterministic:
        epoch_seeded_loader(datamodule, config.seed)
    getattr(host.hook, f"domainfm_before_{stage}")(config=config, module=module)
    trainer.fit(module, datamodule=datamodule, ckpt_path=config.resume)
    metrics = _floats(trainer.callback_metrics)
    getattr(host.hook, f"domainfm_after_{stage}")(config=config, module=module, metrics=metrics)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    return _finish(trainer, run_dir, metrics, checkpoint, module)


def evaluate(config: ConfigSource, overrides: Sequence[str] = (), *,
             host: Host | None = None) -> RunResult:
    """Score a model (``init``: export, run folder or .ckpt) on a dataset's test split.

    The model's own head is used. A model without one (a pretraining export) takes the config's
    ``head``, built on its encoder, so it is scored without fine-tuning (zero-shot, for example
    a forecaster whose head starts from the pretraining decoder).
    """
    host = host or get_host()
    config = resolve(host, load_config(config, tuple(overrides)), "evaluate")
    model = model_from_source(config.init, host)
    if model.head is None and config.head is not None:
        model.head = build_with_encoder(host, "head", config.head, model.encoder)
    if model.head is None:
        raise ConfigError(f"evaluate needs a model with a head; {config.init} has none "
                          "(name one in 'head' to score a pretraining export zero-shot)")
    pl.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_datamodule(host, config.data)
    module = FinetuneModule(model.encoder, model.head, build_metrics(host, config.metrics),
                            config.optim)
    run_dir = Path(config.output_dir)
    _write_config(config, run_dir)
    trainer = build_trainer(config, run_dir, [])
    trainer.test(module, datamodule=datamodule, verbose=False)
    return _finish(trainer, run_dir, _floats(trainer.callback_metrics), None, module)


def _finish(trainer: pl.Trainer, run_dir: Path, metrics: dict[str, float],
            checkpoint: Path | None, module: pl.LightningModule) -> RunResult:
    history = read_history(run_dir / "metrics.csv") if trainer.is_global_zero else {}
    if trainer.is_global_zero:
        summary = {"final": metrics}
        losses = history.get("train_loss") or history.get("train_loss_step") or []
        if losses:
            summary.update(first_train_loss=losses[0][1], last_train_loss=losses[-1][1])
        atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=2))
        plot_loss_curves(history, run_dir / "loss_curve.png")
    return RunResult(run_dir, metrics, checkpoint if checkpoint and checkpoint.exists() else None,
                     history, module)


@rank_zero_only
def _write_config(config: RunConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if not k.startswith("lr-")
            and (isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1))}


# --------------------------------------------------------------------------- models


def source_weights(source: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config dict, prefixed tensors) from an export folder, a run folder or a ``.ckpt``."""
    path = Path(source)
    if path.is_dir() and (path / "checkpoints" / "last.ckpt").is_file() \
            and not (path / "config.json").exists():
        path = path / "checkpoints" / "last.ckpt"
    if path.is_dir():
        config = read_export_config(path)
        return config, read_weights(path / "model.safetensors")
    if not path.is_file():
        raise ExportError(f"{str(path)!r} is neither an export folder, a run folder nor a checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise ExportError(f"checkpoint {str(path)!r} is unreadable: {exc}") from None
    info = checkpoint.get("domainfm") if isinstance(checkpoint, dict) else None
    if not info:
        raise ExportError(f"{str(path)!r} is not a domainfm checkpoint (no 'domainfm' entry)")
    config = dict(info["config"], stage=info["stage"])
    if config.get("mode") == "lora" and info["stage"] == "finetune":
        config["lora_export"] = {**config.get("lora", {}), "merged": False}
    if info["stage"] == "pretrain":
        config["head"] = None
    else:
        config["objective"] = None
    return config, checkpoint["state_dict"]


def encoder_tensors(source: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The encoder's weights (unprefixed) from an export, run folder or checkpoint."""
    config, tensors = source_weights(source)
    encoder = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
    if not encoder:
        raise ExportError(f"{source} holds no encoder weights")
    if config.get("lora_export") and not config["lora_export"].get("merged"):
        raise ExportError(f"{source} holds unmerged LoRA adapters: export it first")
    return encoder


def model_from_source(source: str | os.PathLike[str], host: Host | None = None) -> ExportedModel:
    """Rebuild a model from an export folder, a run folder or a Lightning checkpoint."""
    host = host or get_host()
    config, tensors = source_weights(source)
    tensors = {k: v for k, v in tensors.items() if k.split(".", 1)[0] in ("encoder", "head", "objective")}
    parts = load_parts(config, tensors, host, str(source))
    return ExportedModel(parts["encoder"], parts["head"], parts["objective"], config, Path(source)).eval()


def export(source: str | os.PathLike[str], destination: str | os.PathLike[str], *,
           merge_lora: bool = True, overwrite: bool = False, host: Host | None = None) -> Path:
    """Write an export folder (config.json, model.safetensors, README.md) from a run or checkpoint."""
    host = host or get_host()
    model = model_from_source(source, host)
    config = dict(model.config)
    if config.get("metrics") is None or isinstance(config.get("metrics"), list):
        config["metric_specs"] = config.pop("metrics", None) or []
    metrics_file = Path(source) / "metrics.json"
    if metrics_file.is_file():
        config["metrics_final"] = json.loads(metrics_file.read_text()).get("final", {})
    return write_export(destination, encoder=model.encoder, head=model.head,
                        objective=model.objective, config=config, merge_adapters=merge_lora,
                        overwrite=overwrite, host=host)


def predict(model: str | os.PathLike[str] | ExportedModel, source: str | os.PathLike[str],
            destination: str | os.PathLike[str], *, predictor: str | None = None,
            params: dict[str, Any] | None = None, host: Host | None = None) -> list[Path]:
    """Run a model on domain files (``source``) and write its predictions under ``destination``."""
    host = host or get_host()
    if not isinstance(model, ExportedModel):
        model = model_from_source(model, host)
    record = _predictor_for(model, predictor, host)
    run = record.build(**(params or {}))
    return list(run(model, Path(source), Path(destination)))


def _predictor_for(model: ExportedModel, name: str | None, host: Host) -> Any:
    if name:
        return host.get("predictor", name)
    data = (model.config.get("data") or {}).get("name")
    plugin = model.config["encoder"]["name"].split(".", 1)[0]
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
    host = host or get_host()
    config = resolve(host, load_config(config, tuple(overrides)), "predict")
    p = config.predict
    return predict(config.init, p.input, p.output, predictor=p.name, params=p.params, host=host)


def load_encoder(path: str | os.PathLike[str], host: Host | None = None) -> nn.Module:
    """The encoder of an export folder, run folder or checkpoint, weights loaded, in eval mode."""
    return model_from_source(path, host).encoder


load_model = model_from_source


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
    "model_from_source", "pack", "predict", "predict_from_config", "pretrain",
]
