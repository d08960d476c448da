"""Bad input fails early with one clear line, a non-zero exit code, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from domainfm.cli import main

from support import example_config


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("change, expected", [
    ({"encoder": {"name": "nosuch.encoder"}}, "unknown encoder 'nosuch.encoder'"),
    ({"encoder": {"name": "example.patch_transformr"}}, "Did you mean 'example.patch_transformer'"),
    ({"data": {"name": "example.wave"}}, "Did you mean 'example.waves'"),
    ({"trainer": {"max_step": 3}}, "unknown key config.trainer.max_step. Did you mean 'max_steps'"),
    ({"optimiser": {"lr": 1}}, "unknown key config.optimiser. Did you mean 'optim'"),
    ({"encoder": {"name": "example.patch_transformer", "preset": "huge"}}, "unknown preset 'huge'"),
    ({"encoder": {"name": "example.patch_transformer", "params": {"widht": 3}}},
     "unknown parameter encoder.params.widht. Did you mean 'width'"),
    ({"objective": {"name": "example.masked_patches", "params": {"ratio": 0.5}}},
     "Did you mean 'mask_ratio'"),
    ({"trainer": {"max_steps": "many"}}, "config.trainer.max_steps must be int"),
    ({"mode": "partial"}, "config.mode must be one of"),
])
def test_pretrain_config_errors(tmp_path, capsys, change, expected):
    config = example_config(tmp_path, **change)
    code, err = run(capsys, "pretrain", "--config", write(tmp_path, config))
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_bad_set_override(tmp_path, capsys):
    code, err = run(capsys, "pretrain", "--config", write(tmp_path, example_config(tmp_path)),
                    "--set", "trainer.max_steps")
    assert code == 2 and "--set expects key=value" in err


def test_missing_config_file(tmp_path, capsys):
    code, err = run(capsys, "pretrain", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml" in err and "does not exist" in err


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    import domainfm

    tmp = tmp_path_factory.mktemp("export")
    result = domainfm.finetune(example_config(tmp, head={"name": "example.classifier"}))
    return domainfm.export(result.run_dir, tmp / "model")


def _copy(exported: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(exported, tmp_path / "copy"))


def _finetune_from(tmp_path, capsys, init: Path) -> tuple[int, str]:
    config = example_config(tmp_path, init=str(init), head={"name": "example.classifier"})
    return run(capsys, "finetune", "--config", write(tmp_path, config))


def test_missing_export_folder(tmp_path, capsys):
    code, err = _finetune_from(tmp_path, capsys, tmp_path / "absent")
    assert code == 2 and "absent" in err and "neither an export folder" in err
    assert not (tmp_path / "run").exists()


def test_export_without_weights(exported, tmp_path, capsys):
    folder = _copy(exported, tmp_path)
    (folder / "model.safetensors").unlink()
    code, err = _finetune_from(tmp_path, capsys, folder)
    assert code == 2 and "model.safetensors is missing" in err
    assert not (tmp_path / "run").exists()


def test_truncated_weights(exported, tmp_path, capsys):
    folder = _copy(exported, tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, err = _finetune_from(tmp_path, capsys, folder)
    assert code == 2 and "model.safetensors is unreadable" in err
    assert not (tmp_path / "run").exists()


def test_weights_that_do_not_match_the_config(exported, tmp_path, capsys):
    folder = _copy(exported, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["params"] = {"width": 48}
    (folder / "config.json").write_text(json.dumps(config))
    code, err = run(capsys, "export", str(folder), str(tmp_path / "again"))
    assert code == 2
    assert "shape mismatch" in err and "file (96, 32) vs model (144, 48)" in err
    assert not (tmp_path / "again").exists()


def test_corrupt_config_json(exported, tmp_path, capsys):
    folder = _copy(exported, tmp_path)
    (folder / "config.json").write_text("{not json")
    code, err = run(capsys, "export", str(folder), str(tmp_path / "again"))
    assert code == 2 and "config.json is not valid JSON" in err


def test_export_refuses_to_overwrite(exported, tmp_path, capsys):
    code, err = run(capsys, "export", str(exported), str(exported))
    assert code == 2 and "already exists" in err


def test_cli_exit_code_in_a_real_process(cli, tmp_path):
    result = cli("pretrain", "--config", write(tmp_path, example_config(tmp_path, data={"name": "nosuch.data"})))
    assert result.returncode == 2
    assert "unknown dataset 'nosuch.data'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("override, expected", [
    ("optim.lr=-0.01", "config.optim.lr must be > 0, got -0.01"),
    ("optim.lr=0", "config.optim.lr must be > 0, got 0"),
    ("trainer.precision=fp64", "config.trainer.precision must be one of"),
    ("data.params.batch_size=-1", "data.params.batch_size must be > 0, got -1"),
    ("data.params.batch_size=0", "data.params.batch_size must be > 0, got 0"),
    ("trainer.max_steps=-5", "config.trainer.max_steps must be >= -1, got -5"),
    ("lora.rank=0", "config.lora.rank must be > 0, got 0"),
    ("trainer.devices=0", "config.trainer.devices"),
])
def test_values_outside_their_range_are_one_line_config_errors(tmp_path, capsys, override, expected):
    code, err = run(capsys, "finetune", "--config", write(tmp_path, example_config(tmp_path)),
                    "--set", override)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def _verb_args(verb: str, tmp_path: Path, exported: Path) -> list[str]:
    """Arguments that would run ``verb`` on the example plugin."""
    from domainfm_example.predict import write_example

    if verb in ("pretrain", "finetune"):
        return [verb, "--config", write(tmp_path, example_config(tmp_path))]
    if verb == "evaluate":
        return [verb, "--config", write(tmp_path, {"init": str(exported),
                                                   "output_dir": str(tmp_path / "run")})]
    if verb == "predict":
        source = write_example(tmp_path)
        return [verb, "--config", write(tmp_path, {"init": str(exported), "predict": {
            "input": str(source), "output": str(tmp_path / "run")}})]
    if verb == "export":
        return [verb, str(exported), str(tmp_path / "run")]
    if verb == "pack":
        return [verb, "example.waves", str(tmp_path / "run")]
    return [verb, "--plugin", "example", "--output", str(tmp_path / "run")]


VERBS = ["pretrain", "finetune", "evaluate", "predict", "export", "pack", "demo"]


@pytest.mark.parametrize("how", ["flag", "environment"])
@pytest.mark.parametrize("verb", VERBS)
def test_a_disabled_plugin_is_refused_by_every_verb(verb, how, exported, tmp_path, capsys,
                                                     monkeypatch):
    args = _verb_args(verb, tmp_path, exported)
    if how == "flag":
        args.append("--disable-plugin=example")
    else:
        monkeypatch.setenv("DOMAINFM_DISABLE_PLUGINS", "example")
    code, err = run(capsys, *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "'example'" in err and "disabled" in err, err
    assert not (tmp_path / "run").exists()


def test_a_head_with_fewer_classes_than_the_data_is_one_line(tmp_path, capsys):
    config = example_config(tmp_path, head={"name": "example.classifier", "params": {"num_classes": 3}})
    code, err = run(capsys, "finetune", "--config", write(tmp_path, config))
    assert code == 2 and "head.params.num_classes is 3, but the data has 4 classes" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_missing_required_data_parameter_is_one_line(tmp_path, capsys):
    config = example_config(tmp_path, data={"name": "streaming.shards"})
    code, err = run(capsys, "pretrain", "--config", write(tmp_path, config))
    assert code == 2 and "missing required parameter data.params.path" in err, err
    assert not (tmp_path / "run").exists()


def _sized_datasets() -> list[str]:
    from domainfm.components import accepted
    from domainfm.host import Host

    return sorted(r.name for r in Host().components("dataset")
                  if "batch_size" in accepted(r.build)[0])


@pytest.mark.parametrize("dataset", _sized_datasets())
def test_every_dataset_refuses_a_non_positive_batch_size(dataset):
    from domainfm.components import check_params
    from domainfm.config import ConfigError
    from domainfm.host import Host

    build = Host().get("dataset", dataset).build
    for size in (0, -1):
        with pytest.raises(ConfigError, match=rf"data.params.batch_size must be > 0, got {size}"):
            check_params(build, {"batch_size": size}, "data.params")
