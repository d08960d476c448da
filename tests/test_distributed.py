"""Runs on several processes, and runs that are killed and resumed, end where they should."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from support import example_config

RANK_DUMP = '''
import os
from pathlib import Path

import lightning.pytorch as pl
from safetensors.torch import save_file

from domainfm import hookimpl


@hookimpl
def domainfm_after_pretrain(config, module, metrics):
    rank = module.trainer.global_rank
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(Path(config.output_dir) / f"rank{rank}.safetensors"))


class KillAt(pl.Callback):
    """Dies like a killed process would: no cleanup, no further checkpoint."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            os._exit(9)


@hookimpl
def domainfm_configure_run(stage, config, callbacks):
    if os.environ.get("KILL_AT_EPOCH"):
        callbacks.append(KillAt(int(os.environ["KILL_AT_EPOCH"])))
'''


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _config_file(tmp_path: Path, name: str, **changes) -> Path:
    config = example_config(tmp_path, output_dir=str(tmp_path / name), **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_two_process_cpu_ddp_leaves_one_consistent_checkpoint(plugin_factory, cli, tmp_path):
    plugin_factory("rankdump", RANK_DUMP)
    config = _config_file(tmp_path, "ddp", trainer={"max_steps": 4, "enable_progress_bar": False,
                                                    "accelerator": "cpu"})
    result = cli("pretrain", "--config", str(config), "--devices", "2", "--strategy", "ddp",
                 env=plugin_factory.env)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "ddp"
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["epoch=1-step=4.ckpt", "last.ckpt"], checkpoints
    saved = _checkpoint_state(run / "checkpoints" / "last.ckpt")
    ranks = [load_file(run / f"rank{r}.safetensors") for r in (0, 1)]
    assert set(saved) == set(ranks[0])
    for key, value in saved.items():
        assert torch.equal(value, ranks[0][key]), key
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # DDP kept the replicas in sync
    assert result.stdout.count("run folder:") == 1  # rank 0 reports, once


def test_killed_run_resumes_to_the_same_weights(plugin_factory, cli, tmp_path):
    plugin_factory("rankdump", RANK_DUMP)
    trainer = {"max_epochs": 3, "deterministic": True, "enable_progress_bar": False}
    straight = _config_file(tmp_path, "straight", trainer=trainer)
    killed = _config_file(tmp_path, "killed", trainer=trainer)

    assert cli("pretrain", "--config", str(straight), env=plugin_factory.env).returncode == 0
    env = dict(plugin_factory.env, KILL_AT_EPOCH="2")
    died = cli("pretrain", "--config", str(killed), env=env)
    assert died.returncode == 9
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1
    resumed = cli("pretrain", "--config", str(killed), "--resume", str(last), env=plugin_factory.env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = _checkpoint_state(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    got = _checkpoint_state(last)
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 2
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
