"""Export folders rebuild the model from the folder alone, with identical outputs."""

from __future__ import annotations

import json

import pytest
import yaml
import torch

import domainfm
from domainfm.engine.lora import LoRALinear

from support import example_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    pre = domainfm.pretrain(example_config(tmp / "pre"))
    full = domainfm.finetune(example_config(tmp / "full", init=str(pre.run_dir)))
    lora = domainfm.finetune(example_config(tmp / "lora", init=str(pre.run_dir), mode="lora",
                                            lora={"rank": 4, "alpha": 8}))
    return tmp, pre, full, lora


def _batch():
    from domainfm_example.data import make_waves

    signal, target = make_waves(5, 32, 4, seed=3)
    return {"signal": signal, "target": target}


def test_run_folder_holds_config_metrics_curve_and_checkpoint(runs):
    _, pre, _, _ = runs
    for name in ("config.yaml", "metrics.csv", "metrics.json", "loss_curve.png",
                 "checkpoints/last.ckpt"):
        assert (pre.run_dir / name).is_file(), name
    summary = json.loads((pre.run_dir / "metrics.json").read_text())
    assert summary["first_train_loss"] > 0 and "train_loss" in summary["final"]
    assert pre.history["train_loss"][0][0] < pre.history["train_loss"][-1][0]


def test_export_folder_round_trip(runs):
    tmp, _, full, _ = runs
    folder = domainfm.export(full.run_dir, tmp / "export-full")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    provenance = config["provenance"]
    assert provenance["plugin"]["name"] == "example"
    assert provenance["plugin"]["distribution"] == "domainfm-example"
    assert provenance["domainfm_version"] == domainfm.__version__
    assert config["encoder"] == {"name": "example.patch_transformer", "params": {}, "preset": "tiny"}
    assert config["head"]["name"] == "example.classifier"
    assert config["head"]["params"] == {"num_classes": 4}  # filled from the data specification
    assert "val/accuracy" in config["results"]
    card = (folder / "README.md").read_text()
    assert "example.waves" in card and "val/accuracy" in card and provenance["created"] in card

    batch = _batch()
    module = full.module.eval()
    loaded = domainfm.load_model(folder)
    with torch.no_grad():
        assert torch.equal(module(batch), loaded(batch))
        encoder = domainfm.load_encoder(folder)
        assert torch.equal(module.encoder(batch)["embedding"], encoder(batch)["embedding"])


def test_pretrained_export_keeps_the_objective(runs):
    tmp, pre, _, _ = runs
    folder = domainfm.export(pre.run_dir, tmp / "export-pre")
    model = domainfm.load_model(folder)
    assert model.head is None and model.objective is not None
    batch = _batch()
    with torch.no_grad():
        torch.manual_seed(1)
        expected = pre.module.eval()(batch)["loss"]
        torch.manual_seed(1)
        assert torch.equal(expected, model.objective(model.encoder, batch)["loss"])


def test_lora_export_merged_and_kept(runs):
    tmp, pre, _, lora = runs
    adapted = lora.module.eval()
    assert any(isinstance(m, LoRALinear) for m in adapted.encoder.modules())
    base = pre.module.encoder.state_dict()
    after = adapted.encoder.state_dict()
    # only adapters moved: every base weight equals the pretrained one
    for key, value in base.items():
        lora_key = key.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        assert torch.equal(value, after.get(key, after.get(lora_key))), key
    batch = _batch()
    with torch.no_grad():
        expected = adapted(batch)
        merged = domainfm.load_model(domainfm.export(lora.run_dir, tmp / "lora-merged"))
        kept = domainfm.load_model(domainfm.export(lora.run_dir, tmp / "lora-kept", merge_lora=False))
        assert not any(isinstance(m, LoRALinear) for m in merged.encoder.modules())
        assert any(isinstance(m, LoRALinear) for m in kept.encoder.modules())
        assert torch.allclose(expected, merged(batch), atol=1e-5)
        assert torch.equal(expected, kept(batch))
    assert "merged into the base weights" in (tmp / "lora-merged" / "README.md").read_text()


def test_failed_export_leaves_nothing(runs, monkeypatch):
    tmp, _, full, _ = runs
    import domainfm.model as model_module

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_module, "model_card", explode)
    with pytest.raises(OSError):
        domainfm.export(full.run_dir, tmp / "never")
    assert not (tmp / "never").exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".never")]


def test_evaluate_and_predict_from_the_export(runs, tmp_path):
    tmp, _, full, _ = runs
    folder = domainfm.export(full.run_dir, tmp_path / "model")
    result = domainfm.evaluate({"data": example_config(tmp_path)["data"], "init": str(folder),
                                "output_dir": str(tmp_path / "eval"),
                                "trainer": {"enable_progress_bar": False}})
    assert 0.0 <= result.metrics["test/accuracy"] <= 1.0
    from domainfm_example.predict import write_example

    source = write_example(tmp_path)
    (written,) = domainfm.predict(folder, source, tmp_path / "out")
    classes = written.read_text().split()[1:]
    assert len(classes) == 8 and set(classes) <= {"0", "1", "2", "3"}


def test_evaluate_with_a_fine_tuning_config_keeps_the_trained_head(runs, tmp_path):
    """A config's ``head`` only serves models without one: a trained head is never replaced."""
    tmp, _, full, _ = runs
    base = {"data": example_config(tmp_path)["data"], "init": str(full.run_dir),
            "trainer": {"enable_progress_bar": False}}
    plain = domainfm.evaluate({**base, "output_dir": str(tmp_path / "a")}).metrics
    config = yaml.safe_load((full.run_dir / "config.yaml").read_text())
    with_head = domainfm.evaluate({**base, "head": config["head"],
                                   "output_dir": str(tmp_path / "b")}).metrics
    assert with_head == plain  # same loss and accuracy: the trained head, not a fresh one


def test_predict_from_a_run_config(runs, tmp_path):
    tmp, _, full, _ = runs
    from domainfm_example.predict import write_example

    source = write_example(tmp_path)
    written = domainfm.predict_from_config(
        {"init": str(full.run_dir), "predict": {"input": str(source), "output": str(tmp_path / "o")}})
    assert [p.name for p in written] == ["waves.classes.csv"]
    with pytest.raises(domainfm.DomainfmError, match="predict.input"):
        domainfm.predict_from_config({"init": str(full.run_dir)})


def test_a_run_that_monitors_validation_stands_for_its_best_checkpoint(tmp_path):
    config = example_config(tmp_path, head={"name": "example.classifier"},
                            trainer={"max_epochs": 4, "enable_progress_bar": False,
                                     "checkpoint_monitor": "val_loss"})
    run = domainfm.finetune(config)
    best = run.run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run.run_dir / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((run.run_dir / "metrics.json").read_text())
    val = [v for _, v in run.history["val_loss"]]
    assert summary["best"]["monitor"] == "val_loss"
    assert summary["best"]["score"] == pytest.approx(min(val), rel=1e-6)
    saved = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    loaded = domainfm.load_model(run.run_dir).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in loaded.items())  # the best, not the last
    folder = domainfm.export(run.run_dir, tmp_path / "export")
    results = json.loads((folder / "config.json").read_text())["results"]
    assert results["best val_loss"] == pytest.approx(min(val), rel=1e-6)


def test_a_pretraining_model_is_scored_by_its_objective_on_the_test_split(runs, tmp_path):
    tmp, pre, _, _ = runs
    result = domainfm.evaluate({"init": str(pre.run_dir), "output_dir": str(tmp_path / "eval"),
                                "seed": 1, "trainer": {"enable_progress_bar": False}})
    model = domainfm.load_model(pre.run_dir)
    from domainfm_example.data import WavesDataModule

    data = WavesDataModule(num_samples=64, batch_size=8)  # the run's data (example_config)
    data.setup("test")
    losses, sizes = [], []
    with torch.no_grad():
        torch.manual_seed(1)
        for batch in data.test_dataloader():
            losses.append(model.objective(model.encoder, batch)["loss"].item())
            sizes.append(len(batch["target"]))
    expected = sum(l * n for l, n in zip(losses, sizes)) / sum(sizes)
    assert result.metrics["test_loss"] == pytest.approx(expected, rel=0.3)
    assert result.metrics["test_loss"] > 0
