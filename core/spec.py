"""The model specification: everything needed to rebuild a trained model, in one typed object.

A :class:`ModelSpec` says which encoder, head and objective (with which parameters), which
adapters were applied, what the model knows of its data (:class:`DataSpec`) and where it came
from (:class:`Provenance`). Resolving a run config creates it; every Lightning checkpoint and
every export stores it; loading, evaluating, predicting and exporting read only it. Parameters
are stored fully resolved (including those filled from the data), so a saved model rebuilds
identically wherever it is loaded, with its training data gone.

A :class:`DataSpec` is produced by each datamodule (``datamodule.data_spec()`` after
``setup``): input names, class count, normalisation statistics or a fitted scaler, frequency,
context and horizon, and any further facts a head, metric or predictor needs. The host hands
its values to head and metric builds (a build parameter left unset takes the data
specification's value of the same name), and predictors read it to preprocess new files exactly
as in training.

All of it is plain data (JSON types): this module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from domainfm.schema import parse, to_plain

Stage = Literal["pretrain", "finetune"]


@dataclass(frozen=True)
class DataSpec:
    """What a model must know of its data to run on new files.

    Attributes:
        inputs: channel, band or modality names in the order the model reads them.
        num_classes: classes of a classification or segmentation target.
        normalization: statistics applied to inputs (e.g. ``{"mean": [...], "std": [...]}``
            per input), fixed or fitted on the training split.
        frequency: sampling frequency of a time series (a pandas offset alias).
        context_length, prediction_length: past steps read and future steps forecast.
        task: further facts heads, metrics and predictors read (``ignore_index``, channel roles,
            sampler settings, file layout...), each a JSON value.
    """

    inputs: tuple[str, ...] = ()
    num_classes: int | None = None
    normalization: Mapping[str, Any] = field(default_factory=dict)
    frequency: str | None = None
    context_length: int | None = None
    prediction_length: int | None = None
    task: Mapping[str, Any] = field(default_factory=dict)

    def hints(self) -> dict[str, Any]:
        """Values offered to head and metric builds, by parameter name (unset ones left out)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "task"}
        values.update(self.task)
        return {k: to_plain(v) for k, v in values.items() if v not in (None, (), {})}

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


@dataclass(frozen=True)
class PartSpec:
    """One component by name with its resolved build parameters (``preset`` for encoders)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None

    @property
    def plugin(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter applied to the encoder (``lora``, ``linear_probe`` or a third party's)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provenance:
    """Where a model came from: never needed to rebuild it, always kept with it.

    ``weights`` names the files each part's first weights were read from (released
    checkpoints, a pretraining run); the saved tensors replace them, so they are history, not
    build parameters. ``merged_adapters`` were folded into plain weights at export. ``soup``
    describes a model averaged from others (method, metric, ingredients and their scores).
    """

    stage: Stage = "finetune"
    data: PartSpec | None = None
    parent: str | None = None
    weights: Mapping[str, str] = field(default_factory=dict)
    merged_adapters: tuple[AdapterSpec, ...] = ()
    plugin: Mapping[str, str] = field(default_factory=dict)  # name, distribution, version
    domainfm_version: str = ""
    created: str | None = None
    run_config: Mapping[str, Any] = field(default_factory=dict)
    soup: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """Encoder, optional head and objective, adapters, data facts and provenance."""

    encoder: PartSpec
    head: PartSpec | None = None
    objective: PartSpec | None = None
    adapters: tuple[AdapterSpec, ...] = ()
    data: DataSpec = field(default_factory=DataSpec)
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def plugin(self) -> str:
        return self.encoder.plugin

    def parts(self) -> dict[str, PartSpec | None]:
        return {"encoder": self.encoder, "head": self.head, "objective": self.objective}

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "model specification") -> ModelSpec:
        """Parse and check a stored specification; errors name ``where`` and the key."""
        return parse(cls, raw, where)


__all__ = ["AdapterSpec", "DataSpec", "ModelSpec", "PartSpec", "Provenance"]
