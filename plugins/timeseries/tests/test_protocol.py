"""The shipped ETT protocol configs chain through the public API (what
scripts/timeseries_etth1.py runs): full training keeps its best validation epoch, evaluation
and few-shot start from that run, and few-shot trains the decoder + head only. Here on the tiny
preset and the embedded synthetic series instead of ETTh1/ETTh2."""

import json
from pathlib import Path

import torch
import yaml

import domainfm

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = {"context_length": 64, "prediction_length": 16, "synthetic_rows": 300, "batch_size": 8,
        "target_columns": ["load_a", "load_b", "humidity", "temperature"]}


def shipped(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def tiny(config: dict, **changes) -> dict:
    """The shipped config on the tiny preset and synthetic data, its other choices kept."""
    params = {k: v for k, v in config["data"]["params"].items()
              if k not in ("path", "split", "context_length", "prediction_length", "batch_size")}
    out = {**config, "data": {**config["data"], "params": {**params, **TINY}}, **changes}
    if "encoder" in out:
        out["encoder"] = {**out["encoder"], "preset": "tiny"}
    out["trainer"] = {**config["trainer"], "enable_progress_bar": False,
                      **changes.get("trainer", {})}
    return out


def test_the_protocol_configs_name_one_chain():
    full, few = shipped("finetune_etth1.yaml"), shipped("fewshot_etth2.yaml")
    run = full["output_dir"]
    assert full["trainer"]["checkpoint_monitor"] == "val/mse" == few["trainer"]["checkpoint_monitor"]
    assert "timeseries.mse" in full["metrics"] and "timeseries.mse" in few["metrics"]
    assert shipped("evaluate_etth1.yaml")["init"] == shipped("evaluate_etth2.yaml")["init"] == run
    assert few["init"] == few["head"]["weights"] == run
    assert few["mode"] == "linear-probe" and few["data"]["params"]["few_shot"] == 0.05
    for name, data in (("finetune_etth1", "ETTh1"), ("evaluate_etth1", "ETTh1"),
                       ("evaluate_etth2", "ETTh2"), ("fewshot_etth2", "ETTh2")):
        params = shipped(f"{name}.yaml")["data"]["params"]
        assert Path(params["path"]).name == f"{data}.csv" and params["split"] == "ett_hourly"


def test_full_training_then_few_shot_train_only_the_decoder_and_head(tmp_path):
    steps = {"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 2}
    full = domainfm.finetune(tiny(shipped("finetune_etth1.yaml"), output_dir=str(tmp_path / "full"),
                                  trainer=steps))
    summary = full.run_dir / "metrics.json"
    best = json.loads(summary.read_text())["best"]
    assert best["monitor"] == "val/mse" and best["checkpoint"] == "best.ckpt"
    assert best["score"] == min(v for _, v in full.history["val/mse"])

    source = domainfm.load_model(full.run_dir)  # the best epoch's model
    few_config = tiny(shipped("fewshot_etth2.yaml"), output_dir=str(tmp_path / "few"),
                      init=str(full.run_dir), trainer=steps)
    few_config["head"] = {**few_config["head"], "weights": str(full.run_dir)}
    few = domainfm.finetune(few_config)
    adapted = domainfm.load_model(few.run_dir)
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(adapted.encoder.state_dict()[key], value), key
    moved = [k for k, v in source.head.state_dict().items()
             if not torch.equal(adapted.head.state_dict()[k], v)]
    assert any(k.startswith("decoder.") for k in moved) and any(k.startswith("head.") for k in moved)
    assert adapted.spec.provenance.weights["head"] == str(full.run_dir)

    scored = domainfm.evaluate(tiny(shipped("evaluate_etth2.yaml"), init=str(few.run_dir),
                                    output_dir=str(tmp_path / "few-test")))
    assert {"test/mse", "test/mae"} <= set(scored.metrics)
