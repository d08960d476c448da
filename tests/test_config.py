"""Config parsing (overrides, shorthands, schema errors) and the optimiser it configures."""

from __future__ import annotations

import pytest
import torch

from domainfm.config import ConfigError, load_config
from domainfm.engine.optim import adamw, warmup_cosine


def test_overrides_are_parsed_as_yaml_and_nested():
    config = load_config({"data": "example.waves", "encoder": {"name": "example.patch_transformer"}},
                         ["trainer.max_steps=7", "optim.lr=3e-4", "data.params.batch_size=4",
                          "lora.targets=[qkv, proj]", "trainer.gradient_clip_val=1"])
    assert config.trainer.max_steps == 7 and config.optim.lr == 3e-4
    assert config.data.name == "example.waves" and config.data.params == {"batch_size": 4}
    assert config.lora.targets == ["qkv", "proj"]
    assert config.trainer.gradient_clip_val == 1.0


def test_int_or_float_fields_keep_the_type_given():
    # Lightning reads val_check_interval 50 as batches and 0.5 as a fraction of an epoch
    config = load_config({}, ["trainer.val_check_interval=50", "trainer.limit_val_batches=0.5"])
    assert type(config.trainer.val_check_interval) is int and config.trainer.val_check_interval == 50
    assert type(config.trainer.limit_val_batches) is float


def test_metrics_accept_names_or_mappings():
    config = load_config({"metrics": ["a.b", {"name": "c.d", "params": {"k": 1}}]})
    assert [(m.name, m.params) for m in config.metrics] == [("a.b", {}), ("c.d", {"k": 1})]


@pytest.mark.parametrize("raw, message", [
    ({"seed": "one"}, "config.seed must be int"),
    ({"trainer": {"devices": [1]}}, "config.trainer.devices"),
    ({"encoder": {"preset": "tiny"}}, "missing required key config.encoder.name"),
    ({"lora": {"rank": 4, "alpah": 2}}, "Did you mean 'alpha'"),
])
def test_schema_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        load_config(raw)


def test_warmup_then_cosine_schedule():
    factor = warmup_cosine(100, 0.1, "cosine", 0.0)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.5)
    assert factor(100) == pytest.approx(0.0, abs=1e-9)
    assert warmup_cosine(100, 5, "constant", 0.0)(50) == 1.0


def test_fused_adamw_takes_the_same_steps_as_foreach():
    torch.manual_seed(0)
    fused_model, foreach_model = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    foreach_model.load_state_dict(fused_model.state_dict())
    start = fused_model.weight.detach().clone()
    fused = adamw(fused_model.parameters(), lr=0.1, weight_decay=0.01)
    foreach = adamw([{"params": list(foreach_model.parameters())}], fused=False, lr=0.1, weight_decay=0.01)
    assert fused.defaults["fused"] and foreach.defaults["foreach"] and not foreach.defaults["fused"]
    x = torch.randn(16, 8)
    for _ in range(3):
        for model, optimizer in ((fused_model, fused), (foreach_model, foreach)):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for p, q in zip(fused_model.parameters(), foreach_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert (fused_model.weight - start).abs().mean() > 0.05  # three real steps were taken
