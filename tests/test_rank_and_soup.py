"""Choosing and combining checkpoints: rank candidates before fine-tuning, and model soups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import domainfm
from domainfm.cli import main
from domainfm.transferability import kendall_tau, logme, probe_score, summarise_targets

from support import example_config


def test_logme_prefers_features_that_explain_the_target():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    informative = np.eye(3)[labels] * 2 + 0.3 * rng.normal(size=(300, 3))
    informative = np.concatenate([informative, rng.normal(size=(300, 5))], axis=1)
    noise = rng.normal(size=(300, 8))
    assert logme(informative, labels, True) > logme(noise, labels, True) + 0.1
    assert probe_score(informative, labels, True) > 0.9 > 0.6 > probe_score(noise, labels, True)
    y = informative[:, :2] @ np.array([[1.0], [-2.0]])
    assert logme(informative, y, False) > logme(noise, y, False)
    assert probe_score(informative, y, False) > 0.95


def test_dense_targets_are_summarised_per_sample():
    mask = torch.tensor([[[0, 1], [1, -1]], [[2, 2], [2, 2]]])
    share, classification = summarise_targets([mask], num_classes=3, ignore_index=-1)
    assert not classification
    assert share.tolist() == [pytest.approx([1 / 3, 2 / 3, 0.0]), [0.0, 0.0, 1.0]]
    forecast = torch.arange(2 * 6 * 2, dtype=torch.float32).reshape(2, 6, 2)
    values, classification = summarise_targets([forecast], None, max_dims=3)
    assert values.shape == (2, 3) and not classification
    assert values[0].tolist() == pytest.approx([1.5, 5.5, 9.5])


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    data = {"name": "example.waves", "params": {"num_samples": 256, "batch_size": 16}}
    pre = domainfm.pretrain(example_config(tmp / "pre", data=data, trainer={
        "max_steps": 30, "enable_progress_bar": False, "log_every_n_steps": 5}))
    tuned = []
    for seed in range(3):
        tuned.append(domainfm.finetune(example_config(
            tmp / f"ft{seed}", data=data, init=str(pre.run_dir), seed=seed,
            optim={"lr": 1e-3 * (1 + seed)},
            trainer={"max_steps": 12, "enable_progress_bar": False, "log_every_n_steps": 5,
                     "limit_val_batches": 2})))
    return tmp, data, pre, tuned


def test_rank_scores_every_candidate_and_writes_table_and_chart(runs, tmp_path):
    tmp, data, pre, tuned = runs
    config = example_config(tmp_path, data=data)
    result = domainfm.rank(config, [str(pre.run_dir), "random", str(tuned[0].run_dir)],
                           output=tmp_path / "rank")
    assert {r["candidate"] for r in result.rows} == {str(pre.run_dir), "random", str(tuned[0].run_dir)}
    assert [r["logme"] for r in result.rows] == sorted((r["logme"] for r in result.rows), reverse=True)
    scores = {r["candidate"]: r for r in result.rows}
    # a fine-tuned encoder separates the classes better than a random one
    assert scores[str(tuned[0].run_dir)]["logme"] > scores["random"]["logme"]
    assert scores[str(tuned[0].run_dir)]["probe"] > scores["random"]["probe"]
    assert result.samples == 179  # the whole training split (70% of 256)
    names = sorted(p.name for p in result.files)
    assert names == ["ranking.csv", "ranking.md", "ranking.png"]
    assert (tmp_path / "rank" / "ranking.png").stat().st_size > 1000
    assert "random" in (tmp_path / "rank" / "ranking.csv").read_text()


def _cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


IMAGES_ONLY = '''
from torch import nn
from domainfm import hookimpl
from domainfm.records import EncoderRecord


class ImageEncoder(nn.Module):
    embed_dim = 4

    def __init__(self):
        super().__init__()
        self.linear = nn.LazyLinear(4)

    def forward(self, batch):
        return {"embedding": self.linear(batch["image"].flatten(1))}


@hookimpl
def domainfm_encoders():
    return [EncoderRecord("imaging.flat", "Reads images only.", lambda preset="tiny": ImageEncoder(),
                          presets={"tiny": {}})]
'''


def test_rank_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, capsys, plugin_factory):
    import yaml

    plugin_factory("imaging", IMAGES_ONLY)
    tmp, data, pre, _ = runs
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(example_config(tmp_path, data=data)))
    out = tmp_path / "ranking"
    code, err = _cli(capsys, "rank", "--config", str(path), "--output", str(out))
    assert code == 2 and "at least one candidate" in err and len(err.strip().splitlines()) == 1
    code, err = _cli(capsys, "rank", "--config", str(path), "--candidate", str(pre.run_dir),
                     "--candidate", "{name: imaging.flat}", "--output", str(out))
    assert code == 2 and "cannot encode the target data" in err and "imaging.flat" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_uniform_and_greedy_soups_are_exports_listing_their_ingredients(runs, tmp_path):
    tmp, _, _, tuned = runs
    sources = [str(t.run_dir) for t in tuned]
    uniform = domainfm.soup(sources, tmp_path / "uniform")
    model = domainfm.load_model(uniform.path)
    states = [domainfm.load_model(s).state_dict() for s in sources]
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, sum(s[key] for s in states) / 3, atol=1e-6), key
    card = (uniform.path / "README.md").read_text()
    assert "uniform soup" in card and all(s in card for s in sources)

    greedy = domainfm.soup(sources, tmp_path / "greedy", method="greedy")
    used = [i for i in greedy.ingredients if i["used"]]
    assert 1 <= len(used) <= 3 and all(i["score"] is not None for i in greedy.ingredients)
    best = max(greedy.ingredients, key=lambda i: i["score"])
    assert best["used"]  # greedy starts from the best ingredient on the validation split
    assert greedy.score >= best["score"]  # and never lets the validation metric drop
    config = json.loads((greedy.path / "config.json").read_text())
    assert config["provenance"]["soup"]["method"] == "greedy"
    assert config["results"] == {"val/accuracy": greedy.score}


def test_models_of_other_architectures_are_refused(runs, tmp_path, capsys):
    tmp, data, pre, tuned = runs
    other = domainfm.finetune(example_config(
        tmp_path / "wide", data=data, encoder={"name": "example.patch_transformer", "preset": "tiny",
                                               "params": {"width": 48}},
        trainer={"max_steps": 2, "enable_progress_bar": False}))
    code, err = _cli(capsys, "soup", str(tuned[0].run_dir), str(other.run_dir), "--output",
                     str(tmp_path / "never"))
    assert code == 2 and "cannot average" in err and "encoder differs" in err, err
    assert "'width': 48" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
    code, err = _cli(capsys, "soup", str(tuned[0].run_dir), "--output", str(tmp_path / "never"))
    assert code == 2 and "at least two models" in err
    code, err = _cli(capsys, "soup", str(tuned[0].run_dir), str(pre.run_dir), "--output",
                     str(tmp_path / "never"))
    assert code == 2 and "has no head" in err
    assert not (tmp_path / "never").exists()
