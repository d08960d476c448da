"""Typed records that plugins return from the component hooks, and the vocabulary they share.

One vocabulary everywhere:

* a **batch** is a ``dict[str, Any]`` produced by a datamodule's loaders;
* a **dataset** is a ``LightningDataModule`` whose ``setup()`` reads and validates its files
  (raising :class:`~domainfm.errors.DomainfmError` naming the file and what was expected: the
  host calls it before anything is written), whose ``data_spec()`` returns the
  :class:`~domainfm.spec.DataSpec` a model needs to run on new files, and whose
  ``split_keys(split)`` names the items of ``"train"``, ``"val"`` and ``"test"``: the test split
  is disjoint from the validation split that selects checkpoints (the harness checks it);
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
  such as MASE's history); its ``higher_is_better`` says which way is good.

A record's ``build`` is called by the host with the parameters of the run configuration, so its
signature *is* the schema of that component's parameters: keep parameters keyword-only and
typed (the host checks values against the annotations; ``PositiveInt`` and friends bound them).
A head or metric parameter the config leaves unset takes the data specification's value of the
same name (``num_classes``, ``ignore_index``...), and a metric's also the head's.

Weights: an encoder, objective or head record maps the key layouts of official checkpoints
(``weights={"layout": "module:filter"}``, timm's ``checkpoint_filter_fn`` pattern): a filter
``(state_dict, model, **params) -> state_dict`` returns the model's own keys, and the host reads
the file and loads the result strictly (:mod:`domainfm.weights`). The first layout is the
default for files that are not domainfm runs or exports.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from domainfm.schema import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range

Kind = Literal["dataset", "encoder", "objective", "head", "metric", "predictor"]
KINDS: tuple[Kind, ...] = ("dataset", "encoder", "objective", "head", "metric", "predictor")

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

Batch = dict[str, Any]
Features = dict[str, Any]


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
class BadInput:
    """A broken input a plugin supplies to the conformance harness.

    ``params`` are dataset parameters (or, for a predictor, ``source`` an input file) that
    point at the broken files; the run must fail with one line containing ``expect`` (usually
    the file's name), exit status 2, and write nothing.
    """

    name: str
    expect: str
    params: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None


@dataclass(frozen=True)
class DatasetRecord(Record):
    """``build(**params) -> lightning.LightningDataModule`` (see the module docstring).

    ``tiny_params`` are the parameters that make the smallest dataset the conformance harness
    and tests use (it must be generated or shipped, never downloaded). ``default_encoder``,
    ``default_head`` (with ``head_params``) and ``default_metrics`` say what a fine-tuning run on
    this data uses when the config names nothing else; the harness fine-tunes every dataset that
    has a default head this way. ``files(folder)`` writes a tiny copy of the dataset as files and
    returns the parameters that read it (the harness deletes them after an export to check that
    the model predicts without its training data). ``bad_inputs(folder)`` writes broken copies
    and returns them as :class:`BadInput` cases. ``demo`` tunes ``domainfm demo`` on this data:
    ``params`` (default ``tiny_params``), ``pretrain_steps``, ``finetune_steps``, ``lr``,
    ``finetune_params`` (data parameters of the few-label fine-tuning run) and
    ``pretrain_optim`` / ``finetune_optim`` (optimiser settings over ``lr`` for each stage).
    """

    tiny_params: Mapping[str, Any] = field(default_factory=dict)
    default_encoder: str | None = None
    default_head: str | None = None
    head_params: Mapping[str, Any] = field(default_factory=dict)
    default_metrics: tuple[str, ...] = ()
    files: Callable[[Path], Mapping[str, Any]] | str | None = None
    bad_inputs: Callable[[Path], list[BadInput]] | str | None = None
    demo: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[Kind] = "dataset"

    def __post_init__(self) -> None:
        super().__post_init__()
        _lazy(self, "files", "bad_inputs")


@dataclass(frozen=True)
class EncoderRecord(Record):
    """``build(preset=..., **overrides) -> nn.Module`` implementing :class:`Encoder`.

    ``presets`` maps preset names (``"tiny"`` is required: the harness builds it) to the
    hyper-parameters they stand for; overrides are merged on top, and a config may override
    only those hyper-parameters or the keyword parameters ``build`` names. ``default_dataset`` and
    ``default_objective`` let the harness and the demo pair the encoder with its data;
    ``benchmark_preset`` is the size benchmarks measure, and ``benchmark_data`` the parameters
    of ``default_dataset`` whose samples fit it (``batch_size`` included), so a benchmark script
    needs no plugin name. ``weights`` maps official checkpoint layouts (see the module docstring).
    """

    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_dataset: str | None = None
    default_objective: str | None = None
    benchmark_preset: str | None = None
    benchmark_data: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, Callable[..., Any] | str] = field(default_factory=dict)
    kind: ClassVar[Kind] = "encoder"

    def __post_init__(self) -> None:
        super().__post_init__()
        if "tiny" not in self.presets:
            raise ValueError(f"encoder {self.name!r} must define a 'tiny' preset")
        if self.benchmark_preset is not None and self.benchmark_preset not in self.presets:
            raise ValueError(f"encoder {self.name!r}: benchmark_preset {self.benchmark_preset!r} "
                             "is not one of its presets")
        _lazy_layouts(self)


@dataclass(frozen=True)
class ObjectiveRecord(Record):
    """``build(encoder, **params) -> nn.Module``: an objective (see the module docstring)."""

    weights: Mapping[str, Callable[..., Any] | str] = field(default_factory=dict)
    kind: ClassVar[Kind] = "objective"

    def __post_init__(self) -> None:
        super().__post_init__()
        _lazy_layouts(self)


@dataclass(frozen=True)
class HeadRecord(Record):
    """``build(encoder, **params) -> nn.Module``: a task head (see the module docstring)."""

    weights: Mapping[str, Callable[..., Any] | str] = field(default_factory=dict)
    kind: ClassVar[Kind] = "head"

    def __post_init__(self) -> None:
        super().__post_init__()
        _lazy_layouts(self)


@dataclass(frozen=True)
class MetricRecord(Record):
    """``build(**params) -> torchmetrics.Metric`` updated with ``(predictions, target)``."""

    kind: ClassVar[Kind] = "metric"


@dataclass(frozen=True)
class PredictorRecord(Record):
    """``build(**params) -> callable(model, source, destination) -> list[Path]``.

    Reads domain files (NIfTI, GeoTIFF, CSV, edge lists...), runs a loaded
    :class:`domainfm.Model` on them and writes domain files back, returning what it wrote. It
    preprocesses with ``model.spec.data`` (the training data's statistics travel with the
    model), never by reading the training data again. ``dataset`` names the dataset whose model
    it serves: a fine-tuned one (encoder + head), or a pretrained one (encoder + objective, e.g.
    reconstructing missing inputs) when ``stage`` is ``"pretrain"``. ``example(folder)`` writes a
    small input file there and returns its path, so the harness can run it; ``bad_inputs``
    supplies broken inputs (:class:`BadInput` with ``source``).
    """

    dataset: str | None = None
    stage: Literal["finetune", "pretrain"] = "finetune"
    example: Callable[[Path], Path] | str | None = None
    bad_inputs: Callable[[Path], list[BadInput]] | str | None = None
    kind: ClassVar[Kind] = "predictor"

    def __post_init__(self) -> None:
        super().__post_init__()
        _lazy(self, "example", "bad_inputs")


def _lazy(record: Record, *names: str) -> None:
    for name in names:
        if isinstance(getattr(record, name), str):
            object.__setattr__(record, name, LazyBuild(getattr(record, name)))


def _lazy_layouts(record: Record) -> None:
    layouts = {k: LazyBuild(v) if isinstance(v, str) else v for k, v in record.weights.items()}
    object.__setattr__(record, "weights", layouts)


RECORD_TYPES: dict[Kind, type[Record]] = {
    "dataset": DatasetRecord,
    "encoder": EncoderRecord,
    "objective": ObjectiveRecord,
    "head": HeadRecord,
    "metric": MetricRecord,
    "predictor": PredictorRecord,
}


__all__ = ["BadInput", "DatasetRecord", "EncoderRecord", "Fraction", "HeadRecord", "KINDS", "Kind",
           "LazyBuild", "MetricRecord", "NonNegativeFloat", "NonNegativeInt", "ObjectiveRecord",
           "PositiveFloat", "PositiveInt", "PredictorRecord", "RECORD_TYPES", "Range", "Record"]
