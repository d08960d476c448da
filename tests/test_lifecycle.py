"""Lifecycle hooks let a third party change a run without forking it."""

from __future__ import annotations

import json

import pytest

import domainfm
from domainfm.host import Host

from support import example_config

RECORDER = '''
import lightning.pytorch as pl
from domainfm import hookimpl

CALLS = []


class CountSteps(pl.Callback):
    steps = 0

    def on_train_batch_end(self, trainer, *args):
        CountSteps.steps += 1


@hookimpl
def domainfm_configure_run(stage, config, callbacks):
    CALLS.append(("configure_run", stage))
    callbacks.append(CountSteps())


@hookimpl
def domainfm_param_groups(stage, module, config):
    CALLS.append(("param_groups", stage))
    params = [p for p in module.parameters() if p.requires_grad]
    return [{"params": params, "lr": 0.123, "weight_decay": 0.0}]


@hookimpl
def domainfm_adapt_encoder(encoder, adapter):
    if adapter.name != "recorder.freeze_embed":
        return None
    CALLS.append(("adapt_encoder", type(encoder).__name__))
    encoder.embed.requires_grad_(False)
    return True


@hookimpl
def domainfm_restore_adapter(encoder, adapter):
    return True if adapter.name == "recorder.freeze_embed" else None  # no structure to rebuild


@hookimpl
def domainfm_merge_adapter(encoder, adapter):
    return True if adapter.name == "recorder.freeze_embed" else None  # frozen weights are plain


@hookimpl
def domainfm_before_pretrain(config, module):
    CALLS.append(("before_pretrain", None))


@hookimpl
def domainfm_after_pretrain(config, module, metrics):
    CALLS.append(("after_pretrain", "train_loss" in metrics))


@hookimpl
def domainfm_before_finetune(config, module):
    CALLS.append(("before_finetune", None))


@hookimpl
def domainfm_after_finetune(config, module, metrics):
    CALLS.append(("after_finetune", "val/accuracy" in metrics))


@hookimpl
def domainfm_on_export(config, directory):
    CALLS.append(("on_export", (directory / "model.safetensors").is_file()))
    return "## Audit\\nReviewed by the recorder plugin."
'''


def test_every_lifecycle_hook_is_called_and_changes_the_run(plugin_factory, tmp_path):
    plugin_factory("recorder", RECORDER)
    host = Host()
    assert host.plugins["recorder"].status == "ok"
    module = __import__("tmp_plugin_recorder")

    pre = domainfm.pretrain(example_config(tmp_path / "pre"))
    assert pre.module.trainer.optimizers[0].param_groups[0]["initial_lr"] == 0.123
    assert module.CountSteps.steps == 6

    embed_before = pre.module.encoder.embed.weight.detach().clone()
    tuned = domainfm.finetune(example_config(tmp_path / "ft", init=str(pre.run_dir),
                                             head={"name": "example.classifier"},
                                             adapters=["recorder.freeze_embed"]))
    assert tuned.module.encoder.embed.weight.requires_grad is False
    assert (tuned.module.encoder.embed.weight == embed_before).all()  # frozen by the hook

    folder = domainfm.export(tuned.run_dir, tmp_path / "export")
    assert "Reviewed by the recorder plugin." in (folder / "README.md").read_text()
    stages = [c for c in module.CALLS]
    assert stages == [
        ("param_groups", "pretrain"), ("configure_run", "pretrain"), ("before_pretrain", None),
        ("after_pretrain", True),
        ("adapt_encoder", "PatchTransformer"), ("param_groups", "finetune"),
        ("configure_run", "finetune"), ("before_finetune", None), ("after_finetune", True),
        ("on_export", True),
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["results"]["val/accuracy"] >= 0
    assert [a["name"] for a in config["provenance"]["merged_adapters"]] == ["recorder.freeze_embed"]


def test_an_adapter_no_plugin_provides_is_one_error_and_writes_nothing(tmp_path):
    with pytest.raises(domainfm.DomainfmError, match="no installed plugin provides the adapter 'nosuch'"):
        domainfm.finetune(example_config(tmp_path, head={"name": "example.classifier"},
                                         adapters=["nosuch"]))
    assert not (tmp_path / "run").exists()
