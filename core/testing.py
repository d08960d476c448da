"""The conformance harness: every registered component of a plugin, built and exercised.

Any plugin, in this repository or published elsewhere, runs it from pytest::

    from domainfm.testing import ConformanceSuite

    class TestConformance(ConformanceSuite):
        plugin = "acme"

The suite is parametrised by the registry: each check runs once per registered component, with
the component's name as the test id (``test_encoder[acme.net]``), so a new component is tested
without writing a test and one failure never hides another. For the smallest preset on the
plugin's tiny data it checks real behaviour: the encoder's output contract; that pretraining and
fine-tuning losses are finite and fall over a few steps on one fixed batch; that every trainable
parameter receives a gradient; that LoRA starts as the identity and trains only adapters; that
export -> load reproduces outputs exactly; that each dataset's test split is disjoint from its
validation split; that each predictor, run on a model exported from a real (tiny) run, writes
the same files after the training data is deleted; and that every broken input a plugin
supplies fails with one line naming it, exit status 2 and nothing written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domainfm.components import check_params, fill_params
from domainfm.config import OptimConfig
from domainfm.engine.lora import LoRALinear, inject_lora, merge_lora
from domainfm.engine.modules import FinetuneModule, PretrainModule
from domainfm.host import Host
from domainfm.model import Model, load_model, write_export
from domainfm.records import BadInput, DatasetRecord, EncoderRecord, PredictorRecord
from domainfm.spec import DataSpec, ModelSpec, PartSpec, Provenance

STEPS = 10
LR = 1e-3


class ConformanceError(AssertionError):
    pass


# --------------------------------------------------------------------------- tiny data


class TinyData:
    """A dataset built with its ``tiny_params`` and set up: its first batch and data spec."""

    _cache: dict[tuple[str, int], TinyData] = {}

    def __init__(self, record: DatasetRecord) -> None:
        torch.manual_seed(0)
        self.record = record
        self.datamodule = record.build(**record.tiny_params)
        self.datamodule.setup("fit")
        batch = next(iter(self.datamodule.train_dataloader()))
        if not isinstance(batch, dict):
            raise ConformanceError(f"{record.name}: batches must be dicts, got {type(batch).__name__}")
        self.batch = batch
        spec = self.datamodule.data_spec() if hasattr(self.datamodule, "data_spec") else None
        if not isinstance(spec, DataSpec):
            raise ConformanceError(f"{record.name}: the datamodule's data_spec() must return a "
                                   f"domainfm.spec.DataSpec, got {type(spec).__name__}")
        self.spec = spec

    @classmethod
    def of(cls, record: DatasetRecord) -> TinyData:
        key = (record.name, id(record))
        if key not in cls._cache:
            cls._cache[key] = cls(record)
        return cls._cache[key]


def tiny_batch(record: DatasetRecord) -> dict[str, Any]:
    """The first training batch of a dataset built with its ``tiny_params`` (built once)."""
    return dict(TinyData.of(record).batch)


def build_tiny_encoder(record: EncoderRecord) -> nn.Module:
    torch.manual_seed(0)
    return record.build(preset="tiny")


def _encoder_of(host: Host, record: DatasetRecord) -> EncoderRecord:
    if record.default_encoder:
        return host.get("encoder", record.default_encoder)
    names = [r.name for r in host.components("encoder") if r.plugin == record.plugin]
    if len(names) != 1:
        raise ConformanceError(f"plugin {record.plugin!r}: datasets must name default_encoder")
    return host.get("encoder", names[0])


def head_spec(host: Host, record: DatasetRecord) -> PartSpec:
    """The dataset's default head with its parameters filled from the tiny data's spec."""
    head = host.get("head", record.default_head)
    params = check_params(head.build, record.head_params, f"{record.name}.head_params", skip=1)
    return PartSpec(head.name, fill_params(head.build, params, TinyData.of(record).spec.hints(), skip=1))


def finetune_parts(host: Host, record: DatasetRecord) -> tuple[nn.Module, nn.Module, ModelSpec]:
    encoder_record = _encoder_of(host, record)
    encoder = build_tiny_encoder(encoder_record)
    head = head_spec(host, record)
    spec = ModelSpec(PartSpec(encoder_record.name, {}, "tiny"), head=head,
                     data=TinyData.of(record).spec,
                     provenance=Provenance("finetune", PartSpec(record.name, dict(record.tiny_params))))
    return encoder, host.get("head", head.name).build(encoder, **head.params), spec


def metrics_for(host: Host, record: DatasetRecord, head: PartSpec) -> dict[str, Any]:
    hints = {**TinyData.of(record).spec.hints(), **head.params}
    metrics = {}
    for name in record.default_metrics:
        metric = host.get("metric", name)
        metrics[name.split(".", 1)[1]] = metric.build(**fill_params(metric.build, {}, hints))
    return metrics


# --------------------------------------------------------------------------- checks


def check_encoder(host: Host, record: EncoderRecord) -> dict[str, Any]:
    """The tiny encoder maps its default dataset's batch to a finite (B, embed_dim) embedding."""
    if not record.default_dataset:
        raise ConformanceError(f"{record.name}: set default_dataset so it can be exercised")
    for preset, params in record.presets.items():
        check_params(record.build, params, f"{record.name} preset {preset}")
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


def check_gradients(module: nn.Module, loss: torch.Tensor, what: str) -> None:
    """Every trainable parameter receives a finite gradient from one backward pass."""
    module.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        raise ConformanceError(f"{what}: {len(missing)} trainable parameters get no gradient "
                               f"(freeze them, or use them): {missing[:12]}")
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    if bad:
        raise ConformanceError(f"{what}: non-finite gradients in {bad[:12]}")


def pretraining_parts(host: Host, record: EncoderRecord) -> tuple[PretrainModule, ModelSpec]:
    if not record.default_objective:
        raise ConformanceError(f"{record.name}: set default_objective so it can be pretrained")
    data = host.get("dataset", record.default_dataset)
    encoder = build_tiny_encoder(record)
    objective_record = host.get("objective", record.default_objective)
    params = fill_params(objective_record.build, {}, TinyData.of(data).spec.hints(), skip=1)
    objective = objective_record.build(encoder, **params)
    spec = ModelSpec(PartSpec(record.name, {}, "tiny"),
                     objective=PartSpec(objective_record.name, params), data=TinyData.of(data).spec,
                     provenance=Provenance("pretrain", PartSpec(data.name, dict(data.tiny_params))))
    return PretrainModule(encoder, objective, OptimConfig(), spec), spec


def check_pretraining(host: Host, record: EncoderRecord) -> PretrainModule:
    """The default objective's loss is finite and falls on a fixed batch."""
    module, _ = pretraining_parts(host, record)
    batch = tiny_batch(host.get("dataset", record.default_dataset))
    module.train()
    _train(lambda: module(batch)["loss"], [p for p in module.parameters() if p.requires_grad],
           f"pretraining {record.name} with {record.default_objective}")
    return module


def check_finetuning(host: Host, record: DatasetRecord, mode: str = "full") -> FinetuneModule:
    """Head loss falls on a fixed batch; every default metric computes finite values."""
    batch = tiny_batch(record)
    encoder, head, spec = finetune_parts(host, record)
    if mode == "lora":
        inject_lora(encoder)
    metrics = metrics_for(host, record, spec.head)
    module = FinetuneModule(encoder, head, metrics, OptimConfig(), spec)
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
    encoder, _, _ = finetune_parts(host, record)
    encoder.eval()
    with torch.no_grad():
        before = encoder(batch)["embedding"]
    names = inject_lora(encoder)
    with torch.no_grad():
        after = encoder(batch)["embedding"]
    if not torch.allclose(before, after, atol=1e-6):
        raise ConformanceError(f"{record.name}: LoRA changed the encoder's output at initialisation")
    frozen_ok = all(not p.requires_grad or ".lora_" in f".{n}" or n.startswith("lora_")
                    for n, p in encoder.named_parameters())
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


def check_export_round_trip(host: Host, module: nn.Module, spec: ModelSpec,
                            batch: dict[str, Any], folder: Path) -> None:
    """Export then load: identical outputs (objective in pretraining, head in fine-tuning)."""
    head = getattr(module, "head", None)
    model = Model(module.encoder, head, getattr(module, "objective", None), spec)
    write_export(model, folder, host)
    loaded = load_model(folder, host)
    module.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        expected = module(batch) if head is not None else module(batch)["loss"]
        torch.manual_seed(0)
        got = loaded(batch) if head is not None else loaded.objective(loaded.encoder, batch)["loss"]
    if not torch.equal(expected, got):
        raise ConformanceError(f"{folder.name}: outputs differ after export -> load")


def check_splits(record: DatasetRecord) -> None:
    """The test split shares no item with the validation split (nor with training)."""
    datamodule = TinyData.of(record).datamodule
    if not _defines(datamodule, "test_dataloader"):
        return
    if not hasattr(datamodule, "split_keys"):
        raise ConformanceError(f"{record.name}: a dataset with a test split must implement "
                               "split_keys(split) so its splits can be checked for overlap")
    keys = {split: list(datamodule.split_keys(split)) for split in ("train", "val", "test")}
    if not keys["test"]:
        raise ConformanceError(f"{record.name}: the test split is empty")
    for other in ("val", "train"):
        shared = set(keys["test"]) & set(keys[other])
        if shared:
            raise ConformanceError(f"{record.name}: {len(shared)} test items are also in the "
                                   f"{other} split (e.g. {sorted(map(str, shared))[:3]})")


def _defines(datamodule: Any, hook: str) -> bool:
    """Whether the datamodule implements ``hook`` (every LightningDataModule has the attribute:
    Lightning's own raises, so ``hasattr`` cannot tell)."""
    import lightning.pytorch as pl

    own = getattr(type(datamodule), hook, None)
    return own is not None and own is not getattr(pl.LightningDataModule, hook, None)


# --------------------------------------------------------------------------- real runs


def tiny_run_config(host: Host, data: DatasetRecord, params: dict[str, Any], out: Path,
                    stage: str) -> dict[str, Any]:
    """A config that trains the dataset's default model for two steps."""
    encoder = _encoder_of(host, data)
    config: dict[str, Any] = {
        "data": {"name": data.name, "params": params},
        "encoder": {"name": encoder.name, "preset": "tiny"}, "output_dir": str(out), "seed": 0,
        "trainer": {"max_steps": 2, "enable_progress_bar": False, "log_every_n_steps": 1,
                    "limit_val_batches": 1, "accelerator": "cpu"},
    }
    if stage == "finetune":
        config["head"] = {"name": data.default_head, "params": dict(data.head_params)}
    return config


def trained_export(host: Host, record: PredictorRecord, folder: Path) -> tuple[Path, Path]:
    """(export folder, data folder) of a two-step run on files the dataset record writes."""
    import domainfm

    data = host.get("dataset", record.dataset)
    if data.files is None:
        raise ConformanceError(f"{data.name}: set `files` (write a tiny copy of the dataset as "
                               "files) so predictors can be checked without the training data")
    data_folder = folder / "data"
    data_folder.mkdir(parents=True)
    params = {**dict(data.tiny_params), **dict(data.files(data_folder))}
    stage = record.stage
    if stage == "pretrain":  # a pretraining run on the predictor's dataset
        config = tiny_run_config(host, data, params, folder / "run", "pretrain")
        run = domainfm.pretrain(config, host=host)
    else:
        run = domainfm.finetune(tiny_run_config(host, data, params, folder / "run", "finetune"), host=host)
    return domainfm.export(run.run_dir, folder / "model", host=host), data_folder


def check_predictor(host: Host, record: PredictorRecord, folder: Path) -> list[Path]:
    """A model exported from a real tiny run predicts the example input; after its training
    data is deleted it writes exactly the same files."""
    import domainfm

    if not record.dataset or not record.example:
        raise ConformanceError(f"{record.name}: set `dataset` and `example` so it can be run")
    export, data_folder = trained_export(host, record, folder)
    source = record.example(folder)
    first = domainfm.predict(export, source, folder / "before", predictor=record.name, host=host)
    if not first or not all(Path(p).is_file() and Path(p).stat().st_size for p in first):
        raise ConformanceError(f"{record.name}: wrote no (or empty) files: {first}")
    shutil.rmtree(data_folder)
    second = domainfm.predict(export, source, folder / "after", predictor=record.name, host=host)
    if [p.name for p in first] != [p.name for p in second]:
        raise ConformanceError(f"{record.name}: other files without the training data: {second}")
    for a, b in zip(first, second):
        if a.suffix != ".png" and a.read_bytes() != b.read_bytes():
            raise ConformanceError(f"{record.name}: {a.name} differs once the training data is "
                                   "deleted: preprocessing must come from model.spec.data")
    return first


def run_bad_input(host: Host, owner: DatasetRecord | PredictorRecord, case: BadInput,
                  work: Path) -> tuple[int, str, Path]:
    """Run ``case`` through the CLI as a user would: ``(exit status, stderr, what it would
    write)``. A dataset's case trains its default model; a predictor's predicts with a tiny
    trained export."""
    import contextlib
    import io

    import yaml

    from domainfm.cli import main

    if isinstance(owner, PredictorRecord):
        config = {"init": str(_cached_export(host, owner)),
                  "predict": {"name": owner.name, "input": case.source, "output": str(work / "out")}}
        verb, written = "predict", work / "out"
    else:
        stage = "finetune" if owner.default_head else "pretrain"
        params = {**dict(owner.tiny_params), **dict(case.params)}
        config = tiny_run_config(host, owner, params, work / "run", stage)
        verb, written = stage, work / "run"
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([verb, "--config", str(path)])
    return code, err.getvalue(), written


def check_bad_input(host: Host, owner: DatasetRecord | PredictorRecord, case: BadInput,
                    inputs: Path, work: Path) -> None:
    """The CLI rejects ``case`` with exit 2, one line containing ``case.expect``, no traceback,
    and writes nothing: no run folder, no output, no file in the ``inputs`` folder."""
    before = sorted(inputs.rglob("*"))
    code, err, written = run_bad_input(host, owner, case, work)
    lines = [line for line in err.splitlines() if line.strip()]
    where = f"{owner.name} / {case.name}"
    if code != 2:
        raise ConformanceError(f"{where}: exit status {code}, expected 2; stderr: {err[-2000:]}")
    if len(lines) != 1 or "Traceback" in err:
        raise ConformanceError(f"{where}: expected one line, got {len(lines)}: {err[-2000:]}")
    if case.expect not in lines[0]:
        raise ConformanceError(f"{where}: the error does not name {case.expect!r}: {lines[0]}")
    if written.exists():
        raise ConformanceError(f"{where}: {written} was written although the input was rejected")
    after = sorted(inputs.rglob("*"))
    if after != before:
        raise ConformanceError(f"{where}: files appeared beside the input: "
                               f"{sorted(set(map(str, after)) - set(map(str, before)))[:5]}")


_EXPORTS: dict[str, Path] = {}


def _cached_export(host: Host, record: PredictorRecord) -> Path:
    """One tiny trained export per predictor, shared by its bad-input cases."""
    if record.name not in _EXPORTS:
        folder = _scratch() / "models" / record.name
        _EXPORTS[record.name] = trained_export(host, record, folder)[0]
    return _EXPORTS[record.name]


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


# --------------------------------------------------------------------------- the suite


_HOSTS: dict[str, Host] = {}
_SCRATCH: list[str] = []


def _host_for(plugin: str) -> Host:
    if plugin not in _HOSTS:
        _HOSTS[plugin] = Host()
    host = _HOSTS[plugin]
    info = host.plugins.get(plugin)
    if info is None:
        raise ConformanceError(f"plugin {plugin!r} is not installed")
    if info.status != "ok":
        raise ConformanceError(f"plugin {plugin!r} is {info.status}: {info.error}")
    return host


def _scratch() -> Path:
    """A folder for broken inputs written while tests are collected (removed at exit)."""
    if not _SCRATCH:
        import atexit

        _SCRATCH.append(tempfile.mkdtemp(prefix="domainfm-bad-inputs-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return Path(_SCRATCH[0])


def bad_inputs(host: Host, plugin: str) -> list[tuple[Any, BadInput, Path]]:
    """Every broken input ``plugin``'s records supply: ``(record, case, folder of its files)``."""
    cases = []
    owners = [r for kind in ("dataset", "predictor") for r in host.components(kind)  # type: ignore[arg-type]
              if r.plugin == plugin and r.bad_inputs is not None]
    for owner in owners:
        folder = _scratch() / owner.name
        folder.mkdir(parents=True, exist_ok=True)
        cases += [(owner, case, folder) for case in owner.bad_inputs(folder)]
    return cases


class ConformanceSuite:
    """Subclass in a plugin's tests and set ``plugin``; pytest collects one test per component."""

    plugin: str = ""

    def pytest_generate_tests(self, metafunc: Any) -> None:
        if "record" not in metafunc.fixturenames and "case" not in metafunc.fixturenames:
            return
        host = _host_for(self.plugin)
        mine = lambda kind: [r for r in host.components(kind) if r.plugin == self.plugin]  # noqa: E731
        name = metafunc.function.__name__
        if name == "test_bad_input":
            cases = bad_inputs(host, self.plugin)
            metafunc.parametrize("case", cases, ids=[f"{o.name}:{c.name}" for o, c, _ in cases])
            return
        records = {
            "test_encoder": mine("encoder"),
            "test_pretraining": [r for r in mine("encoder") if r.default_objective],
            "test_dataset": mine("dataset"),
            "test_finetuning": [r for r in mine("dataset") if r.default_head],
            "test_lora": [r for r in mine("dataset") if r.default_head],
            "test_predictor": mine("predictor"),
        }[name]
        metafunc.parametrize("record", records, ids=[r.name for r in records])

    @property
    def host(self) -> Host:
        return _host_for(self.plugin)

    def test_plugin_loads_cleanly(self) -> None:
        info = self.host.plugins[self.plugin]
        assert info.components, f"plugin {self.plugin!r} registers no components"
        assert not info.unknown_hooks, f"unknown hook names: {info.unknown_hooks}"
        check_coverage(self.host, self.plugin)

    def test_encoder(self, record: EncoderRecord) -> None:
        check_encoder(self.host, record)

    def test_pretraining(self, record: EncoderRecord, tmp_path: Path) -> None:
        """Loss falls; every trainable parameter gets a gradient; export -> load is exact."""
        module, spec = pretraining_parts(self.host, record)
        batch = tiny_batch(self.host.get("dataset", record.default_dataset))
        module.train()
        torch.manual_seed(0)
        check_gradients(module, module(batch)["loss"], f"pretraining {record.name}")
        module = check_pretraining(self.host, record)
        check_export_round_trip(self.host, module, spec, batch, tmp_path / record.name)

    def test_dataset(self, record: DatasetRecord) -> None:
        """Dict batches, a data specification, and a test split disjoint from validation."""
        assert tiny_batch(record), f"{record.name}: empty batch"
        check_splits(record)

    def test_finetuning(self, record: DatasetRecord, tmp_path: Path) -> None:
        """Loss falls; every trainable parameter gets a gradient; export -> load is exact."""
        batch = tiny_batch(record)
        encoder, head, spec = finetune_parts(self.host, record)
        module = FinetuneModule(encoder, head, {}, OptimConfig(), spec).train()
        check_gradients(module, head.loss(module(batch), batch), f"fine-tuning on {record.name}")
        module = check_finetuning(self.host, record)
        check_export_round_trip(self.host, module, module.spec, batch, tmp_path / record.name)

    def test_lora(self, record: DatasetRecord) -> None:
        check_lora(self.host, record)
        check_finetuning(self.host, record, mode="lora")

    def test_predictor(self, record: PredictorRecord, tmp_path: Path) -> None:
        check_predictor(self.host, record, tmp_path)

    def test_bad_input(self, case: tuple[Any, BadInput, Path], tmp_path: Path) -> None:
        owner, bad, folder = case
        check_bad_input(self.host, owner, bad, folder, tmp_path)


__all__ = [
    "ConformanceError", "ConformanceSuite", "TinyData", "check_bad_input", "check_coverage",
    "check_encoder", "check_export_round_trip", "check_finetuning", "check_gradients",
    "check_lora", "check_predictor", "check_pretraining", "check_splits", "bad_inputs",
    "run_bad_input", "tiny_batch", "tiny_run_config",
]
