"""Plugins are discovered one by one; a broken or conflicting plugin never takes down the host."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from domainfm.host import Host

THIRD_PARTY = '''
import torch
from torch import nn
from domainfm import hookimpl
from domainfm.records import EncoderRecord


class Mean(nn.Module):
    """Embeds a waveform by a linear map of its samples."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.embed_dim = width
        self.linear = nn.Linear(32, width)

    def forward(self, batch):
        return {"embedding": self.linear(batch["signal"])}


def build(preset: str = "tiny", **overrides):
    return Mean(**{"width": 8, **overrides})


@hookimpl
def domainfm_encoders():
    return [EncoderRecord("acme.linear", "A linear encoder from a third party.", build,
                          presets={"tiny": {"width": 8}}, default_dataset="example.waves",
                          default_objective="example.masked_patches")]
'''


def test_third_party_plugin_is_listed_and_trains_through_the_cli(plugin_factory, cli, tmp_path):
    plugin_factory("acme", THIRD_PARTY, distribution="acme-domainfm", version="2.3")
    listing = cli("plugins", env=plugin_factory.env)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("acme "))
    assert "acme-domainfm" in row and "2.3" in row and "ok" in row

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"name": "example.waves", "params": {"num_samples": 32, "batch_size": 8}},
        "encoder": {"name": "acme.linear"},
        "head": {"name": "example.classifier"},
        "output_dir": str(tmp_path / "run"),
        "trainer": {"max_steps": 3, "enable_progress_bar": False},
    }))
    run = cli("finetune", "--config", str(config), env=plugin_factory.env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000


def test_plugin_that_raises_on_import_is_listed_as_broken(plugin_factory, cli):
    plugin_factory("boom", "raise RuntimeError('kaboom at import')\n")
    listing = cli("plugins", env=plugin_factory.env)
    assert listing.returncode == 0
    boom = next(line for line in listing.stdout.splitlines() if line.startswith("boom "))
    assert "broken" in boom and "kaboom at import" in boom
    example = next(line for line in listing.stdout.splitlines() if line.startswith("example "))
    assert " ok " in f" {example} "
    host = Host()
    assert host.get("encoder", "example.patch_transformer")  # the others still work


def test_unknown_component_from_broken_plugin_explains_why(plugin_factory):
    plugin_factory("boom", "raise RuntimeError('kaboom')\n")
    with pytest.raises(KeyError, match="broken.*kaboom"):
        Host().get("encoder", "boom.net")


def test_component_named_after_another_plugin_is_refused(plugin_factory):
    plugin_factory("other", THIRD_PARTY)  # registers 'acme.linear' from plugin 'other'
    info = Host().plugins["other"]
    assert info.status == "broken" and "must be named 'other.<name>'" in info.error


def test_same_plugin_name_from_two_distributions_names_both(plugin_factory):
    plugin_factory("acme", THIRD_PARTY, distribution="acme-one", module="tmp_plugin_acme_one")
    plugin_factory("acme", THIRD_PARTY, distribution="acme-two", module="tmp_plugin_acme_two")
    host = Host()
    assert host.plugins["acme"].status == "ok"
    clash = [i for i in host.plugins.values() if i.status == "broken"]
    assert len(clash) == 1
    assert "acme-one" in clash[0].error and "acme-two" in clash[0].error
    assert host.get("encoder", "acme.linear")  # the first keeps working


def test_unknown_hook_names_are_reported(plugin_factory):
    plugin_factory("typo", "from domainfm import hookimpl\n\n@hookimpl\ndef domainfm_encoder():\n    return []\n")
    info = Host().plugins["typo"]
    assert info.unknown_hooks == ["domainfm_encoder"]


def test_disable_by_environment_and_option(plugin_factory, cli, monkeypatch):
    env = plugin_factory.env
    env["DOMAINFM_DISABLE_PLUGINS"] = "example"
    listing = cli("plugins", env=env)
    assert "disabled" in next(l for l in listing.stdout.splitlines() if l.startswith("example "))
    listing = cli("plugins", "--disable-plugin", "example", env=plugin_factory.env)
    assert "disabled" in next(l for l in listing.stdout.splitlines() if l.startswith("example "))
    monkeypatch.setenv("DOMAINFM_DISABLE_PLUGINS", "example")
    host = Host()
    assert "example.waves" not in host.registry["dataset"]
    with pytest.raises(KeyError, match="disabled"):
        host.get("dataset", "example.waves")


def test_components_listing_filters_by_kind(cli):
    out = cli("components", "--kind", "encoder")
    assert out.returncode == 0
    lines = out.stdout.splitlines()[2:]
    assert lines and all(" encoder " in f" {l} " for l in lines)
    assert any("example.patch_transformer" in l and "tiny" in l for l in lines)


def test_hookspecs_are_documented_and_exercised():
    """Every hook has a docstring and is implemented somewhere in the host's tests or plugins."""
    from domainfm import hookspecs

    names = [n for n in dir(hookspecs) if n.startswith("domainfm_")]
    here = Path(__file__).parent
    sources = "".join(p.read_text() for p in here.glob("*.py"))
    sources += "".join(p.read_text() for p in (here.parent / "plugins").glob("*/domainfm_*/*.py"))
    sources += (here.parent / "core" / "adapters.py").read_text()
    for name in names:
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"
        assert f"def {name}(" in sources, f"no test or plugin implements {name}"
