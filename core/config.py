"""Run configuration: one schema for every stage, validated before any work starts.

A run config is YAML (or a dict) with these sections; unknown keys fail with a did-you-mean,
and values are checked against their types and ranges (a learning rate must be > 0, a precision
one of Lightning's, a batch size positive) before anything is built or written::

    seed: 0
    output_dir: runs/my-run
    data:      {name: medical.synthetic_brains, params: {batch_size: 2}}
    encoder:   {name: medical.bmmae, preset: tiny, params: {}, weights: null}
    objective: {name: medical.multimodal_mae, params: {}}      # pretrain
    head:      {name: medical.segmentation, params: {}}        # finetune/evaluate/predict
    metrics:   [{name: medical.dice}]
    mode: full            # full | linear-probe | lora: shorthands for `adapters`
    adapters: []          # adapters applied to the encoder before fine-tuning, by name
    init: null            # export folder, run folder or .ckpt holding the pretrained model
    lora: {rank: 8, alpha: 16, dropout: 0.0, targets: []}
    trainer:   {max_steps: 100, devices: 1, strategy: auto, precision: 32-true, ...}
    optim:     {lr: 1.0e-3, weight_decay: 0.05, warmup: 0.05, schedule: cosine}
    evaluate:  {split: test}
    predict:   {input: scan.nii.gz, output: out/, name: null, params: {}}

``weights`` (on ``encoder``, ``head`` or ``objective``) names a file or folder the part's first
weights are read from: a released checkpoint (``{path: ..., layout: ..., params: {...}}``, the
layout being one the component's plugin maps) or a domainfm run or export. Resolving the config
turns it into a model specification (:mod:`domainfm.spec`); the config itself is never changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from domainfm.errors import ConfigError
from domainfm.schema import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    parse,
    to_plain,
)


@dataclass
class WeightsChoice:
    """Where a part's first weights come from; ``layout`` names a key mapping of its plugin."""

    path: str
    layout: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Component:
    """A component chosen by name, with the parameters its ``build`` accepts."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    weights: WeightsChoice | None = None


@dataclass
class EncoderChoice(Component):
    preset: str = "tiny"


@dataclass
class LoraConfig:
    """Low-rank adapters on the encoder's linear layers (``mode: lora``)."""

    rank: PositiveInt = 8
    alpha: PositiveFloat = 16.0
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    targets: list[str] = field(default_factory=list)  # regexes on module names; [] = all Linear


# Lightning's precision flags
Precision = Literal["64-true", "64", "32-true", "32", "16-true", "16", "16-mixed", "bf16-true",
                    "bf16-mixed", "bf16", "transformer-engine", "transformer-engine-float16"]


@dataclass
class TrainerConfig:
    """Passed to Lightning's Trainer; see its documentation for each option."""

    max_steps: Annotated[int, Range(ge=-1)] = -1
    max_epochs: PositiveInt | None = None
    devices: PositiveInt | str = 1
    num_nodes: PositiveInt = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    precision: Precision = "32-true"
    gradient_clip_val: PositiveFloat | None = None
    accumulate_grad_batches: PositiveInt = 1
    log_every_n_steps: PositiveInt = 10
    check_val_every_n_epoch: PositiveInt | None = 1
    val_check_interval: PositiveFloat | PositiveInt | None = None
    limit_train_batches: NonNegativeFloat | NonNegativeInt | None = None
    limit_val_batches: NonNegativeFloat | NonNegativeInt | None = None
    deterministic: bool = False
    enable_progress_bar: bool = True
    checkpoint_every_n_steps: PositiveInt | None = None
    # keep checkpoints/best.ckpt, the best on this logged value (e.g. val_loss); a run folder
    # then stands for that model (evaluate, export, init); last.ckpt still resumes
    checkpoint_monitor: str | None = None
    checkpoint_mode: Literal["min", "max"] = "min"
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

    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.05
    betas: list[Annotated[float, Range(ge=0, lt=1)]] = field(default_factory=lambda: [0.9, 0.95])
    warmup: NonNegativeFloat = 0.05  # a fraction of the total steps if < 1, else a number of steps
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: Fraction = 0.0
    head_lr_scale: PositiveFloat = 1.0


@dataclass
class EvaluateConfig:
    """Which split ``evaluate`` scores: ``test`` (the default) or ``val``, the split that
    selected checkpoints (model soups choose their ingredients on it)."""

    split: Literal["test", "val"] = "test"


@dataclass
class PredictConfig:
    """What ``predict`` reads and writes; ``name`` picks the predictor (default: the model's)."""

    input: str | None = None
    output: str | None = None
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


MODES = {"full": (), "linear-probe": ("linear_probe",), "lora": ("lora",)}


@dataclass
class RunConfig:
    data: Component | None = None
    encoder: EncoderChoice | None = None
    objective: Component | None = None
    head: Component | None = None
    metrics: list[Component] = field(default_factory=list)
    mode: Literal["full", "linear-probe", "lora"] = "full"
    adapters: list[Component] = field(default_factory=list)
    init: str | None = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    seed: int = 0
    output_dir: str = "runs/run"
    resume: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def adapter_choices(self) -> list[Component]:
        """``adapters`` with the ``mode`` shorthand expanded (LoRA takes the ``lora`` section)."""
        shorthand = [Component(name, to_plain(self.lora) if name == "lora" else {})
                     for name in MODES[self.mode]]
        return shorthand + [a for a in self.adapters if a.name not in MODES[self.mode]]


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
    return parse(RunConfig, raw, "config")


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


def dump_config(config: RunConfig, path: Path) -> None:
    from domainfm.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
