"""The pretraining mixture: resolutions, tokens and anti-aliased downsampling."""

import numpy as np
import torch

from domainfm_timeseries.data.mixture import PretrainMixDataModule, downsample


def test_downsampling_is_anti_aliased():
    t = torch.arange(4096, dtype=torch.float32)
    slow = torch.sin(2 * torch.pi * t / 64)
    fast = torch.sin(2 * torch.pi * t * 0.45)  # above the Nyquist rate after halving: must vanish
    out = downsample((slow + fast)[:, None], 2)[:, 0]
    naive = (slow + fast)[::2]
    expected = slow[::2]
    core = slice(100, -100)
    assert (out[core] - expected[core]).abs().max() < 0.05
    assert (naive[core] - expected[core]).abs().max() > 0.5  # plain decimation aliases


def test_mixture_holds_every_resolution_with_its_token(tmp_path):
    dm = PretrainMixDataModule(context_length=64, prediction_length=16, synthetic_rows=800,
                               downsample_factors=[1, 2, 4], stride=8, batch_size=16)
    dm.setup()
    ds = dm.datasets["train"]
    tokens = set(ds.tokens.tolist())
    assert 7 in tokens and 0 in tokens  # hourly, and 2h/4h (outside the vocabulary: OOV)
    batch = next(iter(dm.train_dataloader()))
    assert batch["past_values"].shape == (16, 64, 1) and batch["target"].shape == (16, 16, 1)
    # 4 columns x (800, 400, 200 rows); windows only where a resolution is long enough
    assert len(ds) == sum(4 * len(range(0, int(n * 0.8) - 80 + 1, 8)) for n in (800, 400, 200))
    assert np.isfinite(ds.values.numpy()).all()


def test_mixture_splits_are_disjoint_and_the_spec_is_univariate():
    dm = PretrainMixDataModule(context_length=64, prediction_length=16, synthetic_rows=800,
                               downsample_factors=[1, 2], stride=8)
    dm.setup()
    keys = {s: set(dm.split_keys(s)) for s in ("train", "val", "test")}
    assert all(keys.values()) and not keys["test"] & keys["val"] and not keys["val"] & keys["train"]
    spec = dm.data_spec()
    assert spec.inputs == ("value",) and spec.normalization == {} and spec.prediction_length == 16
