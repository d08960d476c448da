"""A session: one verb's host, resolved config, model specification and run folder.

The CLI and the public functions build a :class:`~domainfm.host.Host` (honouring
``--disable-plugin`` and ``$DOMAINFM_DISABLE_PLUGINS``) and open a session with it; everything
below receives the session and nothing looks a host up again. Opening a session resolves the
config: every name, parameter and value is checked, the datamodule is set up (reading and
validating the data) and the :class:`~domainfm.spec.ModelSpec` is created, all before anything
is written. A run that is then rejected (a data error found while training) removes the run
folder it created.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from domainfm.components import (
    build_datamodule,
    build_encoder,
    build_metrics,
    build_with_encoder,
    check_params,
    encoder_params,
    fill_params,
)
from domainfm.config import Component, ConfigError, RunConfig, WeightsChoice, dump_config, load_config
from domainfm.errors import DomainfmError
from domainfm.host import Host, _version
from domainfm.model import Model, call_adapter_hook, load_model
from domainfm.records import DatasetRecord
from domainfm.spec import AdapterSpec, DataSpec, ModelSpec, PartSpec, Provenance
from domainfm.weights import Checkpoint, load_part_weights, read_checkpoint

Verb = Literal["pretrain", "finetune", "evaluate", "predict"]
NEEDS: dict[str, tuple[str, ...]] = {"pretrain": ("data", "encoder"), "finetune": ("data",),
                                     "evaluate": ("init",), "predict": ("init",)}


@dataclass
class Session:
    """Host + resolved config + model specification + run folder of one verb."""

    host: Host
    verb: Verb
    config: RunConfig
    spec: ModelSpec | None = None
    source: Checkpoint | None = None  # the model named by `init` (evaluate, predict, finetune)
    datamodule: Any = None
    metrics: list[PartSpec] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, verb: Verb, config: Any, overrides: Sequence[str] = (),
             host: Host | None = None, *, read: bool = True) -> Session:
        """Resolve ``config`` for ``verb``; the data is read and checked, nothing is written.

        With ``read=False`` only the config itself is checked against the installed plugins
        (names, parameters, values): neither ``init`` nor the data is read.
        """
        host = host or Host()
        config = load_config(config, tuple(overrides))
        for key in NEEDS[verb]:
            if getattr(config, key) is None:
                raise ConfigError(f"{verb} needs '{key}' in the config")
        session = cls(host, verb, config)
        if not read:
            session._check_only()
            return session
        if verb == "predict":
            if not config.predict.input or not config.predict.output:
                raise ConfigError("predict needs 'predict.input' and 'predict.output' in the config")
            session.source = read_checkpoint(config.init)
            session._require_spec()
            return session
        if verb == "evaluate":
            session._open_evaluate()
        else:
            session._open_training()
        return session

    def _require_spec(self) -> ModelSpec:
        if self.source is None or self.source.spec is None:
            raise ConfigError(f"init {self.config.init!r} holds no domainfm model specification "
                              "(name released weights as a component's `weights` instead)")
        self.host.get("encoder", self.source.spec.encoder.name)  # its plugin is installed, enabled
        return self.source.spec

    def _check_only(self) -> None:
        config, host = self.config, self.host
        if config.data is not None:
            check_params(host.get("dataset", config.data.name).build, config.data.params, "data.params")
        if self.verb in ("pretrain", "finetune") and config.encoder is not None:
            self.config = self._checked_training(config)
        elif config.head is not None:
            _check(host, "head", config.head)

    def _open_training(self) -> None:
        config = self.config
        if config.init:
            self.source = read_checkpoint(config.init)  # a bad path fails before anything else
            if config.encoder is None:
                config = config.replace(encoder=_choice(self._require_spec().encoder))
            if config.encoder.weights is not None:
                raise ConfigError("give either init or encoder.weights, not both")
        self.config = self._checked_training(config)
        data_spec = self._setup_data(self.host.get("dataset", self.config.data.name), "fit")
        self.spec = self._spec(data_spec)

    def _checked_training(self, config: RunConfig) -> RunConfig:
        """The config with defaults filled (objective, head, metrics), every name checked."""
        host = self.host
        if config.encoder is None:
            raise ConfigError(f"{self.verb} needs 'encoder' (or an 'init' model) in the config")
        data = host.get("dataset", config.data.name)
        encoder = host.get("encoder", config.encoder.name)
        encoder_params(encoder, config.encoder.preset, config.encoder.params)
        if self.verb == "pretrain":
            if config.objective is None:
                if not encoder.default_objective:
                    raise ConfigError("pretraining needs 'objective' (the encoder names no default)")
                config = config.replace(objective=Component(encoder.default_objective))
            _check(host, "objective", config.objective)
        else:
            if config.head is None:
                if not data.default_head:
                    raise ConfigError(f"fine-tuning needs 'head' (dataset {data.name!r} names no default)")
                config = config.replace(head=Component(data.default_head, dict(data.head_params)))
            _check(host, "head", config.head)
            config = self._with_metrics(config, data)
        for part in ("encoder", "head", "objective"):
            choice = getattr(config, part)
            if choice is not None and choice.weights is not None:
                _check_layout(host, part, choice)
        from domainfm.engine.scaling import check_scaling

        check_scaling(config.trainer)
        check_params(data.build, config.data.params, "data.params")
        return config

    def _open_evaluate(self) -> None:
        config, host = self.config, self.host
        self.source = read_checkpoint(config.init)
        spec = self._require_spec()
        if config.data is None:
            if spec.provenance.data is None:
                raise ConfigError(f"evaluate needs 'data': {config.init} does not say what it "
                                  "was trained on")
            config = config.replace(data=Component(spec.provenance.data.name,
                                                   dict(spec.provenance.data.params)))
        data = host.get("dataset", config.data.name)
        objective_only = spec.head is None and config.head is None
        if objective_only and spec.objective is None:
            raise ConfigError(f"evaluate needs a model with a head or an objective; {config.init} "
                              "has neither (name a 'head' to score its encoder zero-shot)")
        if spec.head is None and config.head is not None:
            _check(host, "head", config.head)
            if config.head.weights is not None:
                _check_layout(host, "head", config.head)
        self.config = config if objective_only else self._with_metrics(config, data)
        data_spec = self._setup_data(data, "test" if config.evaluate.split == "test" else "validate")
        if spec.head is None and config.head is not None:  # zero-shot: a head on the encoder
            head = self._part("head", self.config.head, {**spec.data.hints(), **data_spec.hints()})
            spec = spec.replace(head=head)
        if spec.head is not None:
            check_classes(spec.head, data_spec, f"the head of {config.init}")
        self.spec = spec
        self.metrics = [] if objective_only else self._metric_specs(data_spec)

    def _with_metrics(self, config: RunConfig, data: DatasetRecord) -> RunConfig:
        if not config.metrics:
            config = config.replace(metrics=[Component(m) for m in data.default_metrics])
        for metric in config.metrics:
            record = self.host.get("metric", metric.name)
            check_params(record.build, metric.params, f"metrics[{metric.name}].params")
        return config

    def _setup_data(self, data: DatasetRecord, stage: str) -> DataSpec:
        """Build and set up the datamodule: the data is read and validated here."""
        self.datamodule = build_datamodule(self.host, data.name, self.config.data.params)
        self.datamodule.setup(stage)
        spec = self.datamodule.data_spec() if hasattr(self.datamodule, "data_spec") else DataSpec()
        if not isinstance(spec, DataSpec):
            raise DomainfmError(f"dataset {data.name!r}: data_spec() returned "
                                f"{type(spec).__name__}, expected domainfm.spec.DataSpec")
        return spec

    def _part(self, kind: str, choice: Component, hints: dict[str, Any]) -> PartSpec:
        record = self.host.get(kind, choice.name)
        params = fill_params(record.build, check_params(record.build, choice.params,
                                                        f"{kind}.params", skip=1), hints, skip=1)
        return PartSpec(choice.name, params)

    def _spec(self, data_spec: DataSpec) -> ModelSpec:
        config, hints = self.config, data_spec.hints()
        record = self.host.get("encoder", config.encoder.name)
        encoder = PartSpec(config.encoder.name, encoder_params(record, config.encoder.preset,
                                                              config.encoder.params),
                           config.encoder.preset)
        head = self._part("head", config.head, hints) if self.verb == "finetune" else None
        objective = self._part("objective", config.objective, hints) if self.verb == "pretrain" else None
        adapters = tuple(AdapterSpec(a.name, dict(a.params)) for a in config.adapter_choices()) \
            if self.verb == "finetune" else ()
        weights = {part: choice.weights.path for part in ("encoder", "head", "objective")
                   if (choice := getattr(config, part)) is not None and choice.weights is not None}
        info = self.host.plugin_of(config.encoder.name)
        provenance = Provenance(
            stage=self.verb, data=PartSpec(config.data.name, dict(config.data.params)),
            parent=config.init, weights=weights, domainfm_version=_version("domainfm"),
            plugin={"name": info.name, "distribution": info.distribution, "version": info.version},
            run_config=config.to_dict())
        spec = ModelSpec(encoder, head, objective, adapters, data_spec, provenance)
        if head is not None:
            check_classes(head, data_spec, "head.params.num_classes")
        self.metrics = self._metric_specs(data_spec, spec)
        return spec

    def _metric_specs(self, data_spec: DataSpec, spec: ModelSpec | None = None) -> list[PartSpec]:
        spec = spec or self.spec
        hints = {**data_spec.hints(), **(dict(spec.head.params) if spec and spec.head else {})}
        out = []
        for metric in self.config.metrics:
            record = self.host.get("metric", metric.name)
            out.append(PartSpec(metric.name, fill_params(record.build, dict(metric.params), hints)))
        return out

    # ------------------------------------------------------------------ models

    def build_model(self) -> Model:
        """The run's model: a training run's parts with their first weights and adapters, or
        the model named by ``init`` (plus a zero-shot head) for evaluation and prediction."""
        if self.verb in ("evaluate", "predict"):
            model = load_model(self.source, self.host)
            if model.head is None and self.spec is not None and self.spec.head is not None:
                model.head = self._build_part("head", self.spec.head, model.encoder).eval()
                model.spec = self.spec
            return model
        spec, config = self.spec, self.config
        encoder = build_encoder(self.host, spec.encoder)
        if config.init:
            load_part_weights(encoder, "encoder", {}, self.source)
        elif config.encoder.weights is not None:
            self._load_weights("encoder", encoder, config.encoder.weights)
        for adapter in spec.adapters:
            call_adapter_hook(self.host, "domainfm_adapt_encoder", encoder, adapter)
        head = objective = None
        if spec.head is not None:
            head = self._build_part("head", spec.head, encoder)
        if spec.objective is not None:
            objective = self._build_part("objective", spec.objective, encoder)
        return Model(encoder, head, objective, spec)

    def _build_part(self, kind: str, part: PartSpec, encoder: Any) -> Any:
        module = build_with_encoder(self.host, kind, part, encoder)
        choice = getattr(self.config, kind)
        if choice is not None and choice.name == part.name and choice.weights is not None:
            self._load_weights(kind, module, choice.weights)
        return module

    def _load_weights(self, part: str, module: Any, weights: WeightsChoice) -> None:
        record = self.host.get(part, getattr(self.config, part).name)
        load_part_weights(module, part, record.weights, weights.path, weights.layout, weights.params)

    def build_metrics(self) -> dict[str, Any]:
        return build_metrics(self.host, self.metrics)

    # ------------------------------------------------------------------ run folder

    def write_config(self) -> None:
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        @rank_zero_only
        def write() -> None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(self.config, self.run_dir / "config.yaml")

        write()

    def removing_run_dir_on_error(self) -> _RunFolderGuard:
        """A context that removes the run folder if this run created it and is rejected."""
        return _RunFolderGuard(self.run_dir, existed=self.run_dir.exists() or bool(self.config.resume))


class _RunFolderGuard:
    def __init__(self, run_dir: Path, existed: bool) -> None:
        self.run_dir, self.existed = run_dir, existed

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if exc is not None and isinstance(exc, DomainfmError) and not self.existed:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return False


def check_classes(head: PartSpec, data: DataSpec, what: str) -> None:
    """A head with fewer classes than the data's labels fails here, not inside the loss."""
    given, needed = head.params.get("num_classes"), data.num_classes
    if isinstance(given, int) and isinstance(needed, int) and given < needed:
        source = data.task.get("label_source")
        raise ConfigError(f"{what} is {given}, but the data has {needed} classes"
                          + (f" ({source})" if source else "")
                          + f": leave num_classes out (the data sets it) or give {needed}")


def _choice(part: PartSpec) -> Any:
    from domainfm.config import EncoderChoice

    return EncoderChoice(part.name, dict(part.params), preset=part.preset or "tiny")


def _check(host: Host, kind: str, choice: Component) -> None:
    record = host.get(kind, choice.name)
    check_params(record.build, choice.params, f"{kind}.params", skip=1)


def _check_layout(host: Host, kind: str, choice: Component) -> None:
    layouts = host.get(kind, choice.name).weights
    layout = choice.weights.layout
    if layout is not None and layout not in layouts:
        from domainfm.schema import did_you_mean

        raise ConfigError(f"unknown weights layout {kind}.weights.layout={layout!r} for "
                          f"{choice.name!r}.{did_you_mean(layout, layouts)}")


__all__ = ["Session"]
