"""The contract between the domainfm host and its plugins: every hook, documented.

A plugin is a module (registered under the entry-point group ``domainfm``) whose functions are
decorated with :data:`hookimpl` and named after the specifications below. Implement only the
hooks you need; the host reports any function called ``domainfm_*`` that matches no hook here.

Component hooks return lists of typed records (:mod:`domainfm.records`). Adapter hooks change
an encoder's structure for fine-tuning and rebuild it when a saved model is loaded (the
built-in LoRA and linear-probe adapters use them, as a third party would). Lifecycle hooks let
a plugin or a third party change a run without forking it: add callbacks, shape optimiser
parameter groups, observe the start and end of training and add sections to a model card.

Example::

    from domainfm import hookimpl
    from domainfm.records import EncoderRecord

    @hookimpl
    def domainfm_encoders():
        return [EncoderRecord("acme.tiny_cnn", "A small CNN for toy images.", build_cnn,
                              presets={"tiny": {"width": 8}})]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:  # pragma: no cover - types only
    import lightning.pytorch as pl
    from torch import nn

    from domainfm.config import RunConfig
    from domainfm.spec import AdapterSpec
    from domainfm.records import (
        DatasetRecord,
        EncoderRecord,
        HeadRecord,
        MetricRecord,
        ObjectiveRecord,
        PredictorRecord,
    )

PROJECT = "domainfm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Stage = Literal["pretrain", "finetune"]


# --------------------------------------------------------------------------- components


@hookspec
def domainfm_datasets() -> list[DatasetRecord]:
    """Datamodules this plugin provides (``build(**params) -> LightningDataModule``)."""


@hookspec
def domainfm_encoders() -> list[EncoderRecord]:
    """Encoders with named size presets (``build(preset=..., **overrides) -> nn.Module``)."""


@hookspec
def domainfm_objectives() -> list[ObjectiveRecord]:
    """Pretraining objectives (``build(encoder, **params) -> nn.Module``)."""


@hookspec
def domainfm_heads() -> list[HeadRecord]:
    """Task heads for fine-tuning (``build(encoder, **params) -> nn.Module``)."""


@hookspec
def domainfm_metrics() -> list[MetricRecord]:
    """Evaluation metrics (``build(**params) -> torchmetrics.Metric``)."""


@hookspec
def domainfm_predictors() -> list[PredictorRecord]:
    """Writers of predictions as domain files (NIfTI, GeoTIFF, CSV, ``.npy``...)."""


@hookspec
def domainfm_configure_run(
    stage: Stage, config: RunConfig, callbacks: list[pl.Callback]
) -> None:
    """Called before the Trainer is built: append Lightning callbacks to ``callbacks``."""


@hookspec(firstresult=True)
def domainfm_param_groups(
    stage: Stage, module: pl.LightningModule, config: RunConfig
) -> list[dict[str, Any]] | None:
    """Return optimiser parameter groups (``[{"params": [...], "lr": ...}, ...]``) or None.

    The first plugin returning groups wins; otherwise all trainable parameters form one group,
    with no weight decay on biases and norms.
    """


# --------------------------------------------------------------------------- adapters


@hookspec
def domainfm_adapt_encoder(encoder: nn.Module, adapter: AdapterSpec) -> bool | None:
    """Apply ``adapter`` (named in the run config's ``adapters``, or by ``mode``) in place.

    Called after the encoder's first weights are loaded and before the head is built. Return
    True when this plugin provides ``adapter.name``; exactly one plugin must. Freeze what should
    not train (``requires_grad_(False)``): an encoder left with no trainable parameter is run
    frozen (eval mode, no gradient), which is how ``linear_probe`` works.
    """


@hookspec
def domainfm_restore_adapter(encoder: nn.Module, adapter: AdapterSpec) -> bool | None:
    """Give a freshly built encoder the structure ``adapter`` gave it, before a saved model's
    weights are loaded (e.g. the LoRA layers of a model exported with ``--keep-lora``).

    Return True when this plugin provides ``adapter.name``.
    """


@hookspec
def domainfm_merge_adapter(encoder: nn.Module, adapter: AdapterSpec) -> bool | None:
    """Fold ``adapter`` into the encoder's plain weights for an export, in place.

    Return True when merged (the export then lists it under ``provenance.merged_adapters`` and
    loads without it); None when this plugin does not provide ``adapter.name``.
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def domainfm_before_pretrain(config: RunConfig, module: pl.LightningModule) -> None:
    """Called once the pretraining module is built, before ``Trainer.fit``."""


@hookspec
def domainfm_after_pretrain(
    config: RunConfig, module: pl.LightningModule, metrics: dict[str, float]
) -> None:
    """Called after pretraining on every rank, with the final logged metrics."""


@hookspec
def domainfm_before_finetune(config: RunConfig, module: pl.LightningModule) -> None:
    """Called once the fine-tuning module is built, before ``Trainer.fit``."""


@hookspec
def domainfm_after_finetune(
    config: RunConfig, module: pl.LightningModule, metrics: dict[str, float]
) -> None:
    """Called after fine-tuning on every rank, with the final logged metrics."""


@hookspec
def domainfm_on_export(config: dict[str, Any], directory: Path) -> str | None:
    """Return a Markdown section to append to the exported model card, or None.

    ``config`` is the ``config.json`` about to be written; the weights are already in
    ``directory``. Called by ``domainfm export`` and when an export is merged (e.g. LoRA).
    """
