"""Scale-out: 2-process CPU DDP pretraining of every plugin, scaling options, benchmark smoke."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from domainfm import api
from domainfm.engine.scaling import block_class, encoder_blocks, enable_activation_checkpointing
from domainfm.host import Host
from support import example_config

ROOT = Path(__file__).resolve().parents[1]
HOST = Host()
PLUGINS = sorted({r.plugin for r in HOST.components("encoder")})  # every installed plugin
# Plugins whose pretraining step leaves some parameters without a gradient: plain DDP refuses
# them, so they run with trainer.ddp_find_unused_parameters (the documented option).
UNUSED_PARAMETERS: set[str] = set()  # plugins whose steps leave parameters without gradients

RANK_DUMP = '''
from pathlib import Path

from safetensors.torch import save_file

from domainfm import hookimpl


def _dump(config, module):
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    buffers = ",".join(name for name, _ in module.named_buffers())
    save_file(state, str(Path(config.output_dir) / f"rank{module.trainer.global_rank}.safetensors"),
              metadata={"buffers": buffers})


@hookimpl
def domainfm_after_pretrain(config, module, metrics):
    _dump(config, module)


@hookimpl
def domainfm_after_finetune(config, module, metrics):
    _dump(config, module)
'''


def _tiny_run(plugin: str) -> tuple[dict, dict]:
    """(data, encoder) sections: the plugin's first encoder, its default dataset, tiny sizes."""
    host = HOST
    encoders = sorted((r for r in host.components("encoder") if r.plugin == plugin), key=lambda r: r.name)
    if not encoders:
        pytest.skip(f"plugin {plugin!r} registers no encoder")
    encoder = encoders[0]
    if not encoder.default_dataset:
        pytest.skip(f"{encoder.name} names no default dataset to pretrain on")
    dataset = host.get("dataset", encoder.default_dataset)
    preset = "tiny" if "tiny" in encoder.presets else next(iter(encoder.presets))
    return ({"name": dataset.name, "params": dict(dataset.tiny_params)},
            {"name": encoder.name, "preset": preset})


# Both stages in one program, as a user script would run them: Lightning starts the second rank
# once (it re-runs this program), and the fine-tuning Trainer reuses the same two processes.
DRIVER = """
import sys

import yaml

from domainfm import api

api.pretrain(yaml.safe_load(open(sys.argv[1])))
api.finetune(yaml.safe_load(open(sys.argv[2])))
"""


@pytest.mark.parametrize("plugin", PLUGINS)
def test_two_process_ddp_pretraining_and_finetuning_checkpoints_equal_rank0(plugin, plugin_factory,
                                                                            tmp_path):
    data, encoder = _tiny_run(plugin)
    plugin_factory("rankdump", RANK_DUMP)
    finetune_data = data if HOST.get("dataset", data["name"]).default_head else _finetune_data(plugin)
    runs = {"pretrain": tmp_path / "pretrain", "finetune": tmp_path / "finetune"}
    paths = []
    for stage, stage_data in (("pretrain", data), ("finetune", finetune_data)):
        trainer = {"max_steps": 2, "enable_progress_bar": False, "accelerator": "cpu",
                   "log_every_n_steps": 1, "limit_val_batches": 1, "devices": 2, "strategy": "ddp"}
        if stage == "pretrain":
            trainer["ddp_find_unused_parameters"] = plugin in UNUSED_PARAMETERS
        config = {"data": stage_data, "encoder": encoder, "output_dir": str(runs[stage]),
                  "seed": 5, "trainer": trainer}
        paths.append(tmp_path / f"{stage}.yaml")
        paths[-1].write_text(yaml.safe_dump(config))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    result = subprocess.run([sys.executable, str(driver), *map(str, paths)], capture_output=True,
                            text=True, env=plugin_factory.env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    for run in runs.values():
        _assert_checkpoint_is_rank0(run)
    model = api.load_model(runs["pretrain"])  # the checkpoint loads back into the plugin's model
    assert sum(p.numel() for p in model.encoder.parameters()) > 0
    assert api.load_model(runs["finetune"]).head is not None


def _finetune_data(plugin: str) -> dict:
    """The plugin's first dataset that names a default head, at its tiny sizes."""
    host = HOST
    records = sorted((r for r in host.components("dataset")
                      if r.plugin == plugin and r.default_head), key=lambda r: r.name)
    if not records:
        pytest.skip(f"plugin {plugin!r} has no dataset with a default head")
    return {"name": records[0].name, "params": dict(records[0].tiny_params)}


def _assert_checkpoint_is_rank0(run: Path) -> None:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2
    saved = checkpoint["state_dict"]
    ranks = [load_file(run / f"rank{r}.safetensors") for r in (0, 1)]
    assert set(saved) == set(ranks[0])
    with safe_open(run / "rank0.safetensors", "pt") as f:
        buffers = set(filter(None, f.metadata()["buffers"].split(",")))
    for key, value in saved.items():
        assert torch.equal(value, ranks[0][key]), key  # the checkpoint is rank 0's model
        if key not in buffers:  # DDP keeps parameters in sync; buffers such as BatchNorm
            assert torch.equal(ranks[0][key], ranks[1][key]), key  # statistics are per rank


@pytest.mark.parametrize("plugin", PLUGINS)
def test_encoder_blocks_are_found(plugin):
    _, choice = _tiny_run(plugin)
    encoder = HOST.get("encoder", choice["name"]).build(preset=choice["preset"])
    blocks = encoder_blocks(encoder)
    if not blocks:
        pytest.skip(f"{choice['name']} has no repeated blocks: FSDP wraps it whole, no checkpointing")
    assert block_class(encoder) is type(blocks[0])
    names = set(encoder.state_dict())
    assert enable_activation_checkpointing(encoder) == len(blocks)
    assert set(encoder.state_dict()) == names  # checkpoints and exports unchanged


def test_activation_checkpointing_and_accumulation_keep_the_loss(tmp_path):
    losses = []
    for checkpointing in (False, True):
        config = example_config(tmp_path, output_dir=str(tmp_path / str(checkpointing)), seed=2,
                                trainer={"max_steps": 3, "deterministic": True, "accelerator": "cpu",
                                         "enable_progress_bar": False, "log_every_n_steps": 1,
                                         "accumulate_grad_batches": 2,
                                         "activation_checkpointing": checkpointing})
        result = api.pretrain(config)
        losses.append([v for _, v in result.history["train_loss"]])
        assert result.module.trainer.accumulate_grad_batches == 2
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_fsdp_is_built_with_the_block_wrap_policy():
    from lightning.pytorch.strategies import FSDPStrategy

    from domainfm.config import TrainerConfig
    from domainfm.engine.scaling import apply_scaling

    _, choice = _tiny_run(PLUGINS[0])
    encoder = HOST.get("encoder", choice["name"]).build(preset=choice["preset"])
    module = torch.nn.Module()
    module.encoder = encoder
    overrides = apply_scaling(TrainerConfig(strategy="fsdp", activation_checkpointing=True), module)
    strategy = overrides["strategy"]
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]  # Lightning turns the set into a ModuleWrapPolicy
    assert set(policy._module_classes) == {block_class(encoder)}


def _benchmarked() -> str:
    """An installed plugin whose encoder names a benchmark preset."""
    named = sorted(r.plugin for r in HOST.components("encoder") if r.benchmark_preset)
    if not named:
        pytest.skip("no installed encoder names a benchmark_preset")
    return named[0]


def test_gpu_suite_smoke_mode_runs_on_cpu(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_suite.py"), "--smoke",
                             "--plugin", _benchmarked(), "--report", str(report)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "samples/s" in result.stdout and "MFU" in result.stdout
    assert "smoke" in report.read_text()


def test_fsdp_on_cpu_is_a_config_error_before_anything_is_written(tmp_path, capsys):
    from domainfm.cli import main

    run = tmp_path / "run"
    config = example_config(tmp_path, output_dir=str(run),
                            trainer={"max_steps": 1, "accelerator": "cpu", "strategy": "fsdp"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["pretrain", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "trainer.strategy=fsdp needs GPUs" in err and "ddp" in err
    assert not run.exists()


@pytest.mark.parametrize("plugin", PLUGINS)
def test_bf16_mixed_pretraining_tracks_fp32(plugin, tmp_path):
    """bf16 autocast on CPU: same first loss as fp32 to bf16 accuracy; weights stay fp32.

    Gradient clipping is on: Lightning's mixed-precision plugin refuses to clip for a fused
    optimiser, so the engine must fall back to the foreach AdamW there."""
    data, encoder = _tiny_run(plugin)
    first, dtypes = {}, set()
    for precision in ("32-true", "bf16-mixed"):
        config = {"data": data, "encoder": encoder, "output_dir": str(tmp_path / precision),
                  "seed": 3, "trainer": {"max_steps": 2, "enable_progress_bar": False,
                                         "accelerator": "cpu", "log_every_n_steps": 1,
                                         "limit_val_batches": 0, "precision": precision,
                                         "gradient_clip_val": 1.0}}
        result = api.pretrain(config)
        losses = [v for _, v in result.history["train_loss"]]
        assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
        first[precision] = losses[0]
        dtypes |= {p.dtype for p in result.module.parameters()}
    assert dtypes == {torch.float32}
    assert first["bf16-mixed"] == pytest.approx(first["32-true"], rel=0.05)
    assert first["bf16-mixed"] != first["32-true"]  # autocast really ran in bf16


def test_compiled_encoder_trains_like_eager(tmp_path):
    try:  # torch.compile on CPU needs a working C++ toolchain; some machines have none
        torch.compile(lambda x: x * 2 + 1)(torch.ones(3))
    except Exception as exc:  # noqa: BLE001 - any toolchain failure means "cannot test here"
        pytest.skip(f"torch.compile does not work on this machine: {type(exc).__name__}: {exc}"[:300])
    losses = []
    for compiled in (False, True):
        config = example_config(tmp_path, output_dir=str(tmp_path / str(compiled)), seed=2,
                                trainer={"max_steps": 3, "deterministic": True, "accelerator": "cpu",
                                         "enable_progress_bar": False, "log_every_n_steps": 1,
                                         "compile": compiled})
        result = api.pretrain(config)
        losses.append([v for _, v in result.history["train_loss"]])
        assert (result.module.encoder._compiled_call_impl is not None) == compiled
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert set(api.load_model(tmp_path / "True").encoder.state_dict()) == \
        set(api.load_model(tmp_path / "False").encoder.state_dict())  # names unchanged
