"""The shipped run configs parse and name only existing components and parameters."""

import inspect
from pathlib import Path

import pytest

import domainfm

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def accepted(build, skip=0):
    params = list(inspect.signature(build).parameters.values())[skip:]
    return {p.name for p in params}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_names_real_components_and_parameters(path):
    config = domainfm.load_config(path)
    host = domainfm.Host()
    data = host.get("dataset", config.data.name)
    assert set(config.data.params) <= accepted(data.build)
    if config.encoder is not None:  # evaluate configs take the model from `init`
        encoder = host.get("encoder", config.encoder.name)
        assert config.encoder.preset in encoder.presets
        assert set(config.encoder.params) <= accepted(encoder.build)
    else:
        assert config.init
    for kind, choice in (("objective", config.objective), ("head", config.head)):
        if choice is not None:
            assert set(choice.params) <= accepted(host.get(kind, choice.name).build, skip=1)
    for metric in config.metrics:
        assert set(metric.params) <= accepted(host.get("metric", metric.name).build)


def test_there_are_pretrain_and_finetune_configs():
    names = {p.name for p in CONFIGS}
    assert any(n.startswith("pretrain") for n in names)
    assert any(n.startswith("finetune") for n in names)


def test_configs_seed_heads_through_weights_never_a_build_parameter():
    """A head's first weights are provenance (``head.weights``), not a build parameter."""
    for path in CONFIGS:
        config = domainfm.load_config(path)
        if config.head is not None:
            assert "init" not in config.head.params and "weights" not in config.head.params
