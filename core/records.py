"""Typed records that plugins return from the component hooks, and the vocabulary they share.

One vocabulary everywhere:

* a **batch** is a ``dict[str, Any]`` produced by a datamodule's loaders;
* an **encoder** is an ``nn.Module`` whose ``forward(batch)`` returns ``dict[str, Tensor]``
  (at least ``"embedding"``: ``(B, D)``; usually ``"tokens"``: ``(B, N, D)`` and, for dense
  heads, ``"hidden_states"``: a list of intermediate ``(B, N, D)``) and which exposes
  ``embed_dim: int``;
* an **objective** (pretraining) is an ``nn.Module`` whose ``forward(encoder, batch)`` returns
  a dict with a scalar ``"loss"`` plus anything worth logging;
* a **head** is an ``nn.Module`` whose ``forward(features, batch)`` returns predictions and whose
  ``loss(predictions, batch)`` returns a scalar; the target lives in ``batch["target"]``;
* a **metric** is a ``torchmetrics.Metric`` updated with ``(predictions, batch["target"])``, plus
  ``batch=batch`` when its ``update`` accepts a ``batch`` keyword (for metrics that need context,
  such as MASE's history).

A record's ``build`` is called by the host with the parameters of the run configuration, so its
signature *is* the schema of that component's parameters: keep parameters keyword-only and typed.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # records stay importable without torch, so listing plugins is fast
    import torch
    from torch import nn

Kind = Literal["dataset", "encoder", "objective", "head", "metric", "predictor"]
KINDS: tuple[Kind, ...] = ("dataset", "encoder", "objective", "head", "metric", "predictor")

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

Batch = dict[str, Any]
Features = dict[str, Any]


@runtime_checkable
class Encoder(Protocol):
    """What the engine needs from an encoder module."""

    embed_dim: int

    def __call__(self, batch: Batch) -> Features: ...


@runtime_checkable
class Objective(Protocol):
    """A pretraining objective: ``objective(encoder, batch)["loss"]`` is minimised."""

    def __call__(self, encoder: nn.Module, batch: Batch) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class Head(Protocol):
    """A task head on top of an encoder's features."""

    def __call__(self, features: Features, batch: Batch) -> torch.Tensor: ...

    def loss(self, predictions: torch.Tensor, batch: Batch) -> torch.Tensor: ...


class LazyBuild:
    """A ``"package.module:function"`` reference, imported on first use.

    Records may name their build function this way so that listing plugins (``domainfm
    plugins``) imports no heavy field library; the signature is still available for checks.
    """

    def __init__(self, path: str) -> None:
        module, sep, attr = path.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"build reference {path!r} must look like 'package.module:function'")
        self.path = path
        self._target: Callable[..., Any] | None = None

    @property
    def target(self) -> Callable[..., Any]:
        if self._target is None:
            import importlib

            module, _, attr = self.path.partition(":")
            self._target = getattr(importlib.import_module(module), attr)
        return self._target

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.target)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"LazyBuild({self.path!r})"


@dataclass(frozen=True)
class Record:
    """A named component a plugin contributes.

    Attributes:
        name: ``"<plugin>.<name>"``, unique across all installed plugins.
        description: one line shown by ``domainfm components``.
        build: factory called with the component's parameters from the run config, or a
            ``"package.module:function"`` string imported on first use (see :class:`LazyBuild`).
    """

    name: str
    description: str
    build: Callable[..., Any] | str
    kind: ClassVar[Kind]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"component name {self.name!r} must look like '<plugin>.<name>' "
                "(lower case letters, digits and underscores)"
            )
        if not self.description or "\n" in self.description:
            raise ValueError(f"component {self.name!r} needs a one-line description")
        if isinstance(self.build, str):
            object.__setattr__(self, "build", LazyBuild(self.build))

    @property
    def plugin(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class DatasetRecord(Record):
    """``build(**params) -> lightning.LightningDataModule``.

    The datamodule yields batches in the shared vocabulary. ``tiny_params`` are the parameters
    that make the smallest dataset the conformance harness and tests use (it must be generated
    or shipped, never downloaded). ``default_encoder``, ``default_head`` (with ``head_params``) and ``default_metrics`` say
    what a fine-tuning run on this data uses when the config names nothing else; the harness
    fine-tunes every dataset that has a default head this way. ``demo`` tunes ``domainfm demo``
    on this data: ``params`` (default ``tiny_params``), ``pretrain_steps``, ``finetune_steps``,
    ``lr``, ``finetune_params`` (data parameters of the few-label fine-tuning run) and
    ``pretrain_optim`` / ``finetune_optim`` (optimiser settings over ``lr`` for each stage).
    """

    tiny_params: Mapping[str, Any] = field(default_factory=dict)
    default_encoder: str | None = None
    default_head: str | None = None
    head_params: Mapping[str, Any] = field(default_factory=dict)
    default_metrics: tuple[str, ...] = ()
    demo: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[Kind] = "dataset"


@dataclass(frozen=True)
class EncoderRecord(Record):
    """``build(preset=..., **overrides) -> nn.Module`` implementing :class:`Encoder`.

    ``presets`` maps preset names (``"tiny"`` is required: the harness builds it) to the
    hyper-parameters they stand for; overrides are merged on top, and a config may override
    only those hyper-parameters or the keyword parameters ``build`` names. ``default_dataset`` and
    ``default_objective`` let the harness and the demo pair the encoder with its data.
    """

    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_dataset: str | None = None
    default_objective: str | None = None
    kind: ClassVar[Kind] = "encoder"

    def __post_init__(self) -> None:
        super().__post_init__()
        if "tiny" not in self.presets:
            raise ValueError(f"encoder {self.name!r} must define a 'tiny' preset")


@dataclass(frozen=True)
class ObjectiveRecord(Record):
    """``build(encoder, **params) -> nn.Module`` implementing :class:`Objective`."""

    kind: ClassVar[Kind] = "objective"


@dataclass(frozen=True)
class HeadRecord(Record):
    """``build(encoder, **params) -> nn.Module`` implementing :class:`Head`."""

    kind: ClassVar[Kind] = "head"


@dataclass(frozen=True)
class MetricRecord(Record):
    """``build(**params) -> torchmetrics.Metric`` updated with ``(predictions, target)``.

    ``higher_is_better`` tells summaries which way is good.
    """

    higher_is_better: bool = True
    kind: ClassVar[Kind] = "metric"


@dataclass(frozen=True)
class PredictorRecord(Record):
    """``build(**params) -> callable(model, source, destination) -> list[Path]``.

    Reads domain files (NIfTI, GeoTIFF, CSV, edge lists...), runs a loaded
    :class:`domainfm.ExportedModel` on them and writes domain files back, returning what it wrote.
    ``dataset`` names the dataset whose model it serves: a fine-tuned one (encoder + head), or a
    pretrained one (encoder + objective, e.g. reconstructing missing inputs) when ``stage`` is
    ``"pretrain"``. ``example(folder)`` writes a small input file there and returns its path, so
    the harness can run it.
    """

    dataset: str | None = None
    stage: Literal["finetune", "pretrain"] = "finetune"
    example: Callable[[Path], Path] | str | None = None
    kind: ClassVar[Kind] = "predictor"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.example, str):
            object.__setattr__(self, "example", LazyBuild(self.example))


RECORD_TYPES: dict[Kind, type[Record]] = {
    "dataset": DatasetRecord,
    "encoder": EncoderRecord,
    "objective": ObjectiveRecord,
    "head": HeadRecord,
    "metric": MetricRecord,
    "predictor": PredictorRecord,
}
