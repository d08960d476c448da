"""Resolve a run config's names to records and build the components, checking parameters first.

A record's ``build`` signature is the schema of its parameters: an unknown parameter fails with
the valid names before anything is built or trained.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
from torch import nn
from torchmetrics import Metric

from domainfm.config import Component, ConfigError, EncoderChoice, RunConfig
from domainfm.host import Host, did_you_mean
from domainfm.records import DatasetRecord, EncoderRecord, Kind


def check_params(build: Callable[..., Any], params: Mapping[str, Any], where: str,
                 skip: int = 0, extra: Iterable[str] | None = None) -> None:
    """Fail on parameters ``build`` does not accept.

    A ``build`` taking ``**kwargs`` accepts anything, unless ``extra`` names what those may be
    (an encoder's overrides are the hyper-parameters its presets define).
    """
    signature = inspect.signature(build)
    accepted = list(signature.parameters.values())[skip:]
    if any(p.kind is p.VAR_KEYWORD for p in accepted) and extra is None:
        return
    names = [p.name for p in accepted if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names += [n for n in extra or () if n not in names]
    for key in params:
        if key not in names:
            raise ConfigError(f"unknown parameter {where}.{key}.{did_you_mean(key, names)}")


def encoder_params(record: EncoderRecord, choice: EncoderChoice) -> dict[str, Any]:
    """The encoder's overrides, checked against its build signature and presets."""
    if choice.preset not in record.presets:
        raise ConfigError(
            f"unknown preset {choice.preset!r} for encoder {record.name!r}."
            f"{did_you_mean(choice.preset, record.presets)}"
        )
    hyper = {key for preset in record.presets.values() for key in preset}
    check_params(record.build, choice.params, "encoder.params", extra=hyper - {"preset"})
    return dict(choice.params)


def build_encoder(host: Host, choice: EncoderChoice) -> nn.Module:
    record: EncoderRecord = host.get("encoder", choice.name)
    return record.build(preset=choice.preset, **encoder_params(record, choice))


def build_with_encoder(host: Host, kind: Kind, choice: Component, encoder: nn.Module) -> nn.Module:
    record = host.get(kind, choice.name)
    check_params(record.build, choice.params, f"{kind}.params", skip=1)
    return record.build(encoder, **choice.params)


def build_metrics(host: Host, choices: list[Component]) -> dict[str, Metric]:
    metrics = {}
    for choice in choices:
        record = host.get("metric", choice.name)
        check_params(record.build, choice.params, f"metrics[{choice.name}].params")
        metrics[choice.name.split(".", 1)[1]] = record.build(**choice.params)
    return metrics


def build_datamodule(host: Host, choice: Component) -> pl.LightningDataModule:
    record: DatasetRecord = host.get("dataset", choice.name)
    check_params(record.build, choice.params, "data.params")
    return record.build(**choice.params)


def resolve(host: Host, config: RunConfig, stage: str) -> RunConfig:
    """Validate every name and parameter in ``config`` for ``stage``; fill dataset defaults.

    Returns the config with the dataset's default head and metrics filled in where the config
    names none, so the resolved config written to the run folder says exactly what ran.
    """
    needs = {"pretrain": ("data", "encoder"), "finetune": ("data", "encoder"),
             "evaluate": ("data", "init"), "predict": ("init",)}[stage]
    for key in needs:
        if getattr(config, key) is None:
            raise ConfigError(f"{stage} needs '{key}' in the config")
    if stage == "predict":
        if not config.predict.input or not config.predict.output:
            raise ConfigError("predict needs 'predict.input' and 'predict.output' in the config")
        return config
    data: DatasetRecord = host.get("dataset", config.data.name)
    check_params(data.build, config.data.params, "data.params")
    if stage == "evaluate":  # the model comes from `init` (an `encoder` section is ignored)
        if config.head is not None:  # ... with a head built on it (zero-shot evaluation)
            head = host.get("head", config.head.name)
            check_params(head.build, config.head.params, "head.params", skip=1)
        return _resolve_metrics(host, config, data)
    encoder: EncoderRecord = host.get("encoder", config.encoder.name)
    encoder_params(encoder, config.encoder)
    if stage == "pretrain":
        if config.objective is None:
            if not encoder.default_objective:
                raise ConfigError("pretraining needs 'objective' (the encoder names no default)")
            config.objective = Component(encoder.default_objective)
        objective = host.get("objective", config.objective.name)
        check_params(objective.build, config.objective.params, "objective.params", skip=1)
    if stage == "finetune":
        if config.head is None:
            if not data.default_head:
                raise ConfigError(f"fine-tuning needs 'head' (dataset {data.name!r} names no default)")
            config.head = Component(data.default_head, dict(data.head_params))
        head = host.get("head", config.head.name)
        check_params(head.build, config.head.params, "head.params", skip=1)
        return _resolve_metrics(host, config, data)
    return config


def _resolve_metrics(host: Host, config: RunConfig, data: DatasetRecord) -> RunConfig:
    if not config.metrics:
        config.metrics = [Component(m) for m in data.default_metrics]
    for metric in config.metrics:
        record = host.get("metric", metric.name)
        check_params(record.build, metric.params, f"metrics[{metric.name}].params")
    return config
