"""Run configuration: one schema for every stage, validated before any work starts.

A run config is YAML (or a dict) with these sections; unknown keys fail with a did-you-mean::

    seed: 0
    output_dir: runs/my-run
    data:      {name: medical.synthetic_brains, params: {batch_size: 2}}
    encoder:   {name: medical.bmmae, preset: tiny, params: {}}
    objective: {name: medical.multimodal_mae, params: {}}      # pretrain
    head:      {name: medical.segmentation, params: {}}        # finetune/evaluate/predict
    metrics:   [{name: medical.dice}]
    mode: full            # full | linear-probe | lora
    init: null            # export folder, run folder or .ckpt holding the pretrained model
    lora: {rank: 8, alpha: 16, dropout: 0.0, targets: []}
    trainer:   {max_steps: 100, devices: 1, strategy: auto, precision: 32-true, ...}
    optim:     {lr: 1.0e-3, weight_decay: 0.05, warmup: 0.05, schedule: cosine}
    predict:   {input: scan.nii.gz, output: out/, name: null, params: {}}
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from domainfm.host import DomainfmError, did_you_mean


class ConfigError(DomainfmError):
    pass


@dataclass
class Component:
    """A component chosen by name, with the parameters its ``build`` accepts."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EncoderChoice(Component):
    preset: str = "tiny"


@dataclass
class LoraConfig:
    """Low-rank adapters on the encoder's linear layers (``mode: lora``)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=list)  # regexes on module names; [] = all Linear


@dataclass
class TrainerConfig:
    """Passed to Lightning's Trainer; see its documentation for each option."""

    max_steps: int = -1
    max_epochs: int | None = None
    devices: int | str = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int | None = 1
    val_check_interval: float | int | None = None
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    deterministic: bool = False
    enable_progress_bar: bool = True
    checkpoint_every_n_steps: int | None = None
    activation_checkpointing: bool = False
    compile: bool = False
    # FSDP (strategy: fsdp), see domainfm.engine.scaling
    fsdp_sharding: str = "FULL_SHARD"
    fsdp_state_dict: Literal["full", "sharded"] = "full"
    # DDP (strategy: ddp): also reduce over parameters a step did not use (slower)
    ddp_find_unused_parameters: bool = False


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine (or constant) decay, stepped per optimiser step."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup: float = 0.05  # a fraction of the total steps if < 1, else a number of steps
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    head_lr_scale: float = 1.0


@dataclass
class PredictConfig:
    """What ``predict`` reads and writes; ``name`` picks the predictor (default: the model's)."""

    input: str | None = None
    output: str | None = None
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    data: Component | None = None
    encoder: EncoderChoice | None = None
    objective: Component | None = None
    head: Component | None = None
    metrics: list[Component] = field(default_factory=list)
    mode: Literal["full", "linear-probe", "lora"] = "full"
    init: str | None = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    seed: int = 0
    output_dir: str = "runs/run"
    resume: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- parsing


def load_config(
    source: str | Path | dict[str, Any] | RunConfig, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    """Read a YAML file or a dict, apply ``key.sub=value`` overrides and validate the schema."""
    if isinstance(source, RunConfig):
        raw = source.to_dict()
    elif isinstance(source, dict):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    for item in overrides:
        apply_override(raw, item)
    return _build(RunConfig, raw, "config")


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``1e-3``, ``[1, 2]``)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str):  # `data: example.waves` shorthand
            child = node[part] = {"name": child}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value) if value != "" else None


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown key {where}.{key}.{did_you_mean(str(key), fields)}")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _coerce(hints[name], raw[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {where}.{name}")
    return cls(**values)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if type(value) in args:  # an exact match wins: `float | int` keeps 50 (batches) an int
            return value
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is list:
        if isinstance(value, (str, dict)) and args and dataclasses.is_dataclass(args[0]):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and "name" in {f.name for f in dataclasses.fields(tp)}:
            value = {"name": value}  # shorthand: `objective: medical.multimodal_mae`
        return _build(tp, value, where)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads `3e-4` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}")
        return value
    return value


def dump_config(config: RunConfig, path: Path) -> None:
    from domainfm.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
