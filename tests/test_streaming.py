"""Tar shards: packing, splitting across ranks and workers, and runs identical to the folder's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from domainfm import api
from domainfm.components import accepted
from domainfm.host import Host
from domainfm.streaming.shards import PackError, ShardStream, decode_field, encode_field, read_index

HOST = Host()


def _cases() -> dict[str, tuple[str, dict, str]]:
    """plugin -> (dataset, params, encoder): each plugin's first encoder on its default data.

    Random training augmentations are frozen by packing (one draw), so a dataset whose build
    takes ``augment`` is packed, and trained from the folder, with augmentation off.
    """
    cases = {}
    for encoder in HOST.components("encoder"):
        if encoder.plugin in cases or not encoder.default_dataset:
            continue
        record = HOST.get("dataset", encoder.default_dataset)
        params = dict(record.tiny_params)
        if "augment" in accepted(record.build)[0]:
            params["augment"] = False
        cases[encoder.plugin] = (record.name, params, encoder.name)
    return cases


CASES = _cases()


def test_fields_round_trip():
    values = {"t": torch.arange(6, dtype=torch.int16).reshape(2, 3)[:, 1:], "a": np.ones((2, 2), np.float32),
              "s": np.float32(1.5), "text": "case-001", "n": 3, "x": 0.25, "flag": True, "l": [1, 2]}
    for name, value in values.items():
        ext, data = encode_field(name, value)
        back = decode_field(ext, data)
        if isinstance(value, torch.Tensor):
            assert torch.equal(back, value) and back.dtype == value.dtype
        elif isinstance(value, (np.ndarray, np.generic)):
            assert np.array_equal(back, value) and back.dtype == value.dtype
        else:
            assert back == value and type(back) is type(value)


def _keys(stream: ShardStream) -> list[float]:
    return [float(sample["signal"][0]) for sample in stream]


@pytest.mark.parametrize("samples_per_shard", [5, 40])  # many shards / fewer shards than consumers
def test_ranks_and_workers_get_disjoint_equal_shares(tmp_path, samples_per_shard):
    root = api.pack("example.waves", tmp_path / "shards", {"num_samples": 64, "batch_size": 8},
                    samples_per_shard=samples_per_shard)
    entry = read_index(root)["splits"]["train"]
    urls = [str(root / s["file"]) for s in entry["shards"]]
    counts = [s["samples"] for s in entry["shards"]]
    everything = _keys(ShardStream(urls, counts))
    assert len(everything) == entry["samples"] == len(set(everything))
    for shuffle in (False, True):
        shares = []
        for rank in range(2):
            stream = ShardStream(urls, counts, shuffle=shuffle, seed=7, rank=rank, world_size=2)
            shares.append(_keys(stream))
            assert len(stream) == len(shares[-1])
            again = ShardStream(urls, counts, shuffle=shuffle, seed=7, rank=rank, world_size=2)
            assert _keys(again) == shares[-1]  # reproducible from the seed
        assert len(shares[0]) == len(shares[1])  # DDP ranks step together
        assert not set(shares[0]) & set(shares[1])
        left_out = len(everything) - 2 * len(shares[0])
        assert set(shares[0]) | set(shares[1]) <= set(everything)
        assert left_out <= max(counts)  # the documented truncation to equal shares
    # Workers: consumers = ranks x workers, each with its own share.
    stream = ShardStream(urls, counts)
    plans = [stream.plan(c, 4) for c in range(4)]
    assert len({limit for _, _, limit in plans}) == 1


def _losses(run: Path) -> tuple[list[float], list[float]]:
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    train = [float(r["train_loss"]) for r in rows if r.get("train_loss")]
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    return train, val


@pytest.mark.parametrize("plugin", list(CASES))
def test_streamed_run_has_the_folder_runs_loss_curve(tmp_path, plugin):
    dataset, params, encoder = CASES[plugin]
    try:
        shards = api.pack(dataset, tmp_path / "shards", params)
    except PackError as exc:
        pytest.skip(f"{dataset} cannot be packed: {exc}")
    index = read_index(shards)
    epochs = 2 if index["splits"]["train"]["samples"] <= 64 else 1  # the reshuffle matches too

    def run(data: dict, name: str) -> tuple[list[float], list[float]]:
        api.pretrain({"data": data, "encoder": {"name": encoder, "preset": "tiny"}, "seed": 3,
                      "output_dir": str(tmp_path / name),
                      "trainer": {"max_epochs": epochs, "deterministic": True, "accelerator": "cpu",
                                  "enable_progress_bar": False, "log_every_n_steps": 1}})
        return _losses(tmp_path / name)

    folder = run({"name": dataset, "params": params}, "folder")
    streamed = run({"name": "streaming.shards",
                    "params": {"path": str(shards), "source": dataset}}, "streamed")
    assert len(folder[0]) >= 2 and len(folder[0]) == len(streamed[0])
    assert streamed[0] == pytest.approx(folder[0], rel=1e-5, abs=1e-6)
    assert streamed[1] == pytest.approx(folder[1], rel=1e-5, abs=1e-6)


def test_pack_command_and_its_errors(tmp_path, capsys):
    from domainfm.cli import main

    out = tmp_path / "shards"
    assert main(["pack", "example.waves", str(out), "--param", "num_samples=40",
                 "--samples-per-shard", "8"]) == 0, capsys.readouterr().err[-2000:]
    index = json.loads((out / "index.json").read_text())
    assert index["source"] == {"name": "example.waves", "params": {"num_samples": 40}}
    assert index["splits"]["train"]["samples"] == 28 and len(index["splits"]["train"]["shards"]) == 4
    capsys.readouterr()
    assert main(["pack", "example.waves", str(out)]) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(["pack", "example.wavez", str(tmp_path / "x")]) == 2
    assert "example.waves" in capsys.readouterr().err


def test_wrong_source_is_refused(tmp_path):
    shards = api.pack("example.waves", tmp_path / "shards", {"num_samples": 40})
    from domainfm.config import ConfigError
    from domainfm.streaming.shards import ShardDataModule

    with pytest.raises(ConfigError, match="packed from 'example.waves'"):
        ShardDataModule(path=str(shards), source="example.other").setup()


def test_two_process_ddp_from_shards(cli, tmp_path):
    """Each DDP rank streams its own shards; both ranks run the same number of steps."""
    import yaml

    shards = api.pack("example.waves", tmp_path / "shards", {"num_samples": 64, "batch_size": 8},
                      samples_per_shard=6)
    config = {"data": {"name": "streaming.shards", "params": {"path": str(shards)}},
              "encoder": {"name": "example.patch_transformer", "preset": "tiny"},
              "output_dir": str(tmp_path / "run"),
              "trainer": {"max_epochs": 1, "enable_progress_bar": False, "accelerator": "cpu",
                          "log_every_n_steps": 1}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli("pretrain", "--config", str(path), "--devices", "2", "--strategy", "ddp")
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    # 44 train samples in 8 shards (6, ..., 6, 2): 4 shards per rank, equal shares of 20 samples
    # (the smallest share), 2 full batches of 8 per rank (drop_last as packed).
    assert checkpoint["global_step"] == 2
