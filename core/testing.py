"""The conformance harness: every registered component of a plugin, built and exercised.

Any plugin, in this repository or published elsewhere, runs it from pytest::

    from domainfm.testing import ConformanceSuite

    class TestConformance(ConformanceSuite):
        plugin = "acme"

For every component it builds the smallest preset on the plugin's tiny dataset and checks real
behaviour: the encoder's output contract, that pretraining and fine-tuning losses are finite and
fall over a few steps on one fixed batch, that LoRA starts as the identity and trains only
adapters, that export -> load reproduces outputs exactly, and that predictors write files.
The functions are public too, for plugins that want finer-grained tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domainfm.components import check_params
from domainfm.config import Component, EncoderChoice, OptimConfig
from domainfm.engine.modules import FinetuneModule, PretrainModule
from domainfm.export_folder import write_export
from domainfm.host import Host, get_host
from domainfm.engine.lora import LoRALinear, inject_lora, merge_lora
from domainfm.records import DatasetRecord, EncoderRecord, PredictorRecord

STEPS = 10
LR = 1e-3


class ConformanceError(AssertionError):
    pass


def tiny_batch(record: DatasetRecord, stage: str = "fit") -> dict[str, Any]:
    """The first training batch of a dataset built with its ``tiny_params`` (built once)."""
    key = (record.name, id(record), stage)
    if key not in _BATCHES:
        _BATCHES[key] = _first_batch(record, stage)
    return dict(_BATCHES[key])


_BATCHES: dict[tuple[str, int, str], dict[str, Any]] = {}


def _first_batch(record: DatasetRecord, stage: str) -> dict[str, Any]:
    torch.manual_seed(0)
    datamodule = record.build(**record.tiny_params)
    if hasattr(datamodule, "prepare_data"):
        datamodule.prepare_data()
    datamodule.setup(stage)
    batch = next(iter(datamodule.train_dataloader()))
    if not isinstance(batch, dict):
        raise ConformanceError(f"{record.name}: batches must be dicts, got {type(batch).__name__}")
    return batch


def build_tiny_encoder(record: EncoderRecord) -> nn.Module:
    torch.manual_seed(0)
    return record.build(preset="tiny")


def check_encoder(host: Host, record: EncoderRecord) -> dict[str, Any]:
    """The tiny encoder maps its default dataset's batch to a finite (B, embed_dim) embedding."""
    if not record.default_dataset:
        raise ConformanceError(f"{record.name}: set default_dataset so it can be exercised")
    batch = tiny_batch(host.get("dataset", record.default_dataset))
    encoder = build_tiny_encoder(record)
    if not isinstance(getattr(encoder, "embed_dim", None), int):
        raise ConformanceError(f"{record.name}: the encoder must expose an int `embed_dim`")
    out = encoder(batch)
    if not isinstance(out, dict) or "embedding" not in out:
        raise ConformanceError(f"{record.name}: forward must return a dict with 'embedding'")
    emb = out["embedding"]
    if emb.ndim != 2 or emb.shape[1] != encoder.embed_dim:
        raise ConformanceError(f"{record.name}: embedding shape {tuple(emb.shape)}, "
                               f"expected (batch, {encoder.embed_dim})")
    if not torch.isfinite(emb).all():
        raise ConformanceError(f"{record.name}: embedding has non-finite values")
    return batch


def _train(loss_fn: Callable[[], torch.Tensor], params: list[nn.Parameter], what: str,
           steps: int = STEPS) -> list[float]:
    """A few AdamW steps on one batch, the RNG reset before each so masks repeat."""
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)
        loss = loss_fn()
        if not torch.isfinite(loss):
            raise ConformanceError(f"{what}: loss is not finite ({loss.item()})")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if not min(losses[-3:]) < losses[0]:
        raise ConformanceError(f"{what}: loss did not fall over {steps} steps: {losses}")
    return losses


def check_pretraining(host: Host, record: EncoderRecord) -> PretrainModule:
    """The default objective's loss is finite and falls on a fixed batch."""
    if not record.default_objective:
        raise ConformanceError(f"{record.name}: set default_objective so it can be pretrained")
    batch = tiny_batch(host.get("dataset", record.default_dataset))
    encoder = build_tiny_encoder(record)
    objective = host.get("objective", record.default_objective).build(encoder)
    module = PretrainModule(encoder, objective, OptimConfig())
    module.train()
    _train(lambda: module(batch)["loss"], [p for p in module.parameters() if p.requires_grad],
           f"pretraining {record.name} with {record.default_objective}")
    return module


def finetune_parts(host: Host, record: DatasetRecord) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    encoder_name = record.default_encoder or _only_encoder(host, record.plugin)
    encoder = build_tiny_encoder(host.get("encoder", encoder_name))
    head_record = host.get("head", record.default_head)
    check_params(head_record.build, record.head_params, f"{record.name}.head_params", skip=1)
    head = head_record.build(encoder, **record.head_params)
    return encoder, head, {"encoder": encoder_name}


def _only_encoder(host: Host, plugin: str) -> str:
    names = [r.name for r in host.components("encoder") if r.plugin == plugin]
    if len(names) != 1:
        raise ConformanceError(f"plugin {plugin!r}: datasets must name default_encoder")
    return names[0]


def check_finetuning(host: Host, record: DatasetRecord, mode: str = "full") -> FinetuneModule:
    """Head loss falls on a fixed batch; every default metric computes finite values."""
    batch = tiny_batch(record)
    encoder, head, _ = finetune_parts(host, record)
    if mode == "lora":
        inject_lora(encoder)
    metrics = {m.split(".", 1)[1]: host.get("metric", m).build() for m in record.default_metrics}
    module = FinetuneModule(encoder, head, metrics, OptimConfig(), mode=mode)
    module.train()
    trainable = [p for p in module.parameters() if p.requires_grad]
    _train(lambda: head.loss(module(batch), batch), trainable,
           f"fine-tuning ({mode}) {record.default_head} on {record.name}")
    module.eval()
    with torch.no_grad():
        predictions = module(batch)
    for name, metric in metrics.items():
        metric.update(predictions, batch["target"], **metric._filter_kwargs(batch=batch))
        value = metric.compute()
        values = value.values() if isinstance(value, dict) else [value]
        for v in values:
            if not torch.is_tensor(v) or not torch.isfinite(v.float()).all():
                raise ConformanceError(f"metric {name} on {record.name} gave {value}")
    return module


def check_lora(host: Host, record: DatasetRecord) -> None:
    """LoRA starts as the identity, trains only adapters and the head, and merges exactly."""
    batch = tiny_batch(record)
    encoder, head, _ = finetune_parts(host, record)
    encoder.eval()
    with torch.no_grad():
        before = encoder(batch)["embedding"]
    names = inject_lora(encoder)
    with torch.no_grad():
        after = encoder(batch)["embedding"]
    if not torch.allclose(before, after, atol=1e-6):
        raise ConformanceError(f"{record.name}: LoRA changed the encoder's output at initialisation")
    frozen_ok = all(
        not p.requires_grad or ".lora_" in f".{n}" or n.startswith("lora_")
        for n, p in encoder.named_parameters()
    )
    if not frozen_ok or not names:
        raise ConformanceError(f"{record.name}: LoRA left base encoder weights trainable")
    for module in encoder.modules():  # move the adapters away from zero, then merge
        if isinstance(module, LoRALinear):
            nn.init.normal_(module.lora_b, std=0.02)
    with torch.no_grad():
        adapted = encoder(batch)["embedding"]
        merge_lora(encoder)
        merged = encoder(batch)["embedding"]
    if not torch.allclose(adapted, merged, atol=1e-4, rtol=1e-4):
        raise ConformanceError(f"{record.name}: merged LoRA weights give other outputs")


def check_export_round_trip(host: Host, module: nn.Module, config: dict[str, Any],
                            batch: dict[str, Any], folder: Path) -> None:
    """Export then load: identical outputs (objective in pretraining, head in fine-tuning)."""
    from domainfm.api import load_model

    encoder = module.encoder
    head = getattr(module, "head", None)
    objective = getattr(module, "objective", None)
    write_export(folder, encoder=encoder, head=head, objective=objective, config=config, host=host)
    loaded = load_model(folder, host)
    module.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        expected = module(batch) if head is not None else module(batch)["loss"]
        torch.manual_seed(0)
        if head is not None:
            got = loaded(batch)
        else:
            got = loaded.objective(loaded.encoder, batch)["loss"]
    if not torch.equal(expected, got):
        raise ConformanceError(f"{folder.name}: outputs differ after export -> load")


def check_predictor(host: Host, record: PredictorRecord, folder: Path) -> list[Path]:
    """A tiny model (fine-tuned, or pretrained for ``stage="pretrain"`` predictors), exported,
    predicts on the predictor's example input and writes non-empty files."""
    from domainfm.api import predict

    if not record.dataset or not record.example:
        raise ConformanceError(f"{record.name}: set `dataset` and `example` so it can be run")
    data = host.get("dataset", record.dataset)
    if record.stage == "pretrain":
        encoder_record = host.get("encoder", data.default_encoder or _only_encoder(host, data.plugin))
        encoder = build_tiny_encoder(encoder_record)
        objective = host.get("objective", encoder_record.default_objective).build(encoder)
        config = _config(data, encoder_record.name,
                         objective=Component(encoder_record.default_objective))
        parts = {"encoder": encoder, "head": None, "objective": objective}
    else:
        encoder, head, names = finetune_parts(host, data)
        config = _config(data, names["encoder"],
                         head=Component(data.default_head, dict(data.head_params)))
        parts = {"encoder": encoder, "head": head, "objective": None}
    export = write_export(folder / "model", config=config, host=host, **parts)
    source = record.example(folder)
    written = predict(export, source, folder / "out", predictor=record.name, host=host)
    if not written or not all(Path(p).is_file() and Path(p).stat().st_size for p in written):
        raise ConformanceError(f"{record.name}: wrote no (or empty) files: {written}")
    return written


def _config(data: DatasetRecord, encoder: str, head: Component | None = None,
            objective: Component | None = None) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "stage": "finetune" if head else "pretrain",
        "data": {"name": data.name, "params": dict(data.tiny_params)},
        "encoder": asdict(EncoderChoice(encoder, {}, "tiny")),
        "head": asdict(head) if head else None,
        "objective": asdict(objective) if objective else None,
    }


def check_coverage(host: Host, plugin: str) -> None:
    """Every head, metric, objective and dataset of the plugin is exercised by some pairing."""
    mine = lambda kind: {r.name for r in host.components(kind) if r.plugin == plugin}  # noqa: E731
    datasets = [host.get("dataset", n) for n in mine("dataset")]
    encoders = [host.get("encoder", n) for n in mine("encoder")]
    covered = {
        "head": {d.default_head for d in datasets},
        "metric": {m for d in datasets for m in d.default_metrics},
        "objective": {e.default_objective for e in encoders},
    }
    missing = [f"{kind} {name}" for kind, names in covered.items()
               for name in sorted(mine(kind) - names)]
    if missing:
        raise ConformanceError(
            f"plugin {plugin!r}: no tiny dataset/encoder exercises {', '.join(missing)} "
            "(name them as a dataset's default_head/default_metrics or an encoder's default_objective)"
        )


class ConformanceSuite:
    """Subclass in a plugin's tests and set ``plugin``; pytest collects the checks below."""

    plugin: str = ""

    def _host(self) -> Host:
        host = get_host()
        info = host.plugins.get(self.plugin)
        if info is None:
            raise ConformanceError(f"plugin {self.plugin!r} is not installed")
        if info.status != "ok":
            raise ConformanceError(f"plugin {self.plugin!r} is {info.status}: {info.error}")
        return host

    def _records(self, kind: str) -> list[Any]:
        return [r for r in self._host().components(kind) if r.plugin == self.plugin]  # type: ignore[arg-type]

    def test_plugin_loads_cleanly(self) -> None:
        info = self._host().plugins[self.plugin]
        assert info.components, f"plugin {self.plugin!r} registers no components"
        assert not info.unknown_hooks, f"unknown hook names: {info.unknown_hooks}"
        check_coverage(self._host(), self.plugin)

    def test_datasets_yield_dict_batches(self) -> None:
        for record in self._records("dataset"):
            batch = tiny_batch(record)
            assert batch, f"{record.name}: empty batch"

    def test_encoders_and_pretraining(self, tmp_path: Path) -> None:
        host = self._host()
        for record in self._records("encoder"):
            for preset, params in record.presets.items():
                check_params(record.build, params, f"{record.name} preset {preset}")
            batch = check_encoder(host, record)
            module = check_pretraining(host, record)
            data = host.get("dataset", record.default_dataset)
            config = _config(data, record.name, objective=Component(record.default_objective))
            check_export_round_trip(host, module, config, batch, tmp_path / record.name)

    def test_finetuning_and_export(self, tmp_path: Path) -> None:
        host = self._host()
        for record in self._records("dataset"):
            if not record.default_head:
                continue
            module = check_finetuning(host, record)
            config = _config(record, record.default_encoder or _only_encoder(host, self.plugin),
                             head=Component(record.default_head, dict(record.head_params)))
            check_export_round_trip(host, module, config, tiny_batch(record),
                                    tmp_path / record.name)

    def test_lora(self) -> None:
        host = self._host()
        for record in self._records("dataset"):
            if record.default_head:
                check_lora(host, record)
                check_finetuning(host, record, mode="lora")

    def test_predictors(self, tmp_path: Path) -> None:
        host = self._host()
        for record in self._records("predictor"):
            check_predictor(host, record, tmp_path / record.name)


__all__ = [
    "ConformanceError", "ConformanceSuite", "check_coverage", "check_encoder",
    "check_export_round_trip", "check_finetuning", "check_lora", "check_pretraining",
    "check_predictor", "tiny_batch",
]
