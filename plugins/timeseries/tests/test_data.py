"""Reading, checking, splitting, scaling and windowing tabular series; bad input errors."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DistributedSampler

from domainfm.errors import DomainfmError
from domainfm_timeseries.data.forecast import ForecastDataModule
from domainfm_timeseries.data.synthetic import synthetic_frame
from domainfm_timeseries.data.windows import split_bounds
from domainfm_timeseries.frequency import VOCAB_SIZE, infer_frequency, resolution_token
from domainfm_timeseries.presets import TTMConfig

ETTH1 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "timeseries" / "ETTh1.csv"


def write(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return str(path)


def dm(path, **kw):
    kw = {"context_length": 32, "prediction_length": 8, "batch_size": 4, **kw}
    module = ForecastDataModule(path=path, **kw)
    module.setup()
    return module


def frame(rows=200):
    return synthetic_frame(rows=rows, seed=0)


def test_windows_are_slices_of_the_scaled_series(tmp_path):
    f = frame()
    m = dm(write(tmp_path, f), target_columns=["load_a", "load_b"], scale=True)
    train_end = split_bounds(200, "ratio", 32)["train"][1]
    values = f[["load_a", "load_b"]].to_numpy()
    mean, std = values[:train_end].mean(0), values[:train_end].std(0)  # train split only
    np.testing.assert_allclose(m.scaler.mean, mean, rtol=1e-6)
    batch = m.datasets["train"].__getitems__([5])
    expected = (values[5:5 + 40] - mean) / std
    np.testing.assert_allclose(batch["past_values"][0].numpy(), expected[:32], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch["target"][0].numpy(), expected[32:], rtol=1e-5, atol=1e-5)
    assert batch["freq_token"].tolist() == [resolution_token("h")]


def test_exogenous_columns_and_head_params(tmp_path):
    m = dm(write(tmp_path, frame()), target_columns=["load_a"], past_exog_columns=["humidity"],
           future_exog_columns=["temperature"])
    b = next(iter(m.train_dataloader()))
    assert b["past_values"].shape[-1] == 3 and b["target"].shape[-1] == 1
    assert b["future_exog"].shape == (4, 8, 1)
    hints = m.data_spec().hints()  # what the host offers the head's build
    assert {k: hints[k] for k in ("prediction_channels", "exogenous_channels")} == \
        {"prediction_channels": [0], "exogenous_channels": [2]}
    # every column a target: the head forecasts all channels, no indices to repeat
    assert "prediction_channels" not in dm(write(tmp_path, frame())).data_spec().hints()


def test_data_spec_carries_columns_scaler_frequency_and_lengths(tmp_path):
    m = dm(write(tmp_path, frame()), target_columns=["load_a", "load_b"],
           past_exog_columns=["humidity"], future_exog_columns=["temperature"])
    spec = m.data_spec()
    assert spec.inputs == ("load_a", "load_b", "humidity", "temperature")
    assert spec.frequency == "h" and (spec.context_length, spec.prediction_length) == (32, 8)
    np.testing.assert_allclose(spec.normalization["mean"], m.scaler.mean)
    np.testing.assert_allclose(spec.normalization["std"], m.scaler.std)
    assert spec.task["target_columns"] == ["load_a", "load_b"]
    assert spec.task["past_exog_columns"] == ["humidity"]
    assert spec.task["future_exog_columns"] == ["temperature"]
    assert spec.task["timestamp_column"] == "date" and "id_column" not in spec.task
    assert json.loads(json.dumps(spec.to_dict())) == spec.to_dict()  # plain JSON, no numpy
    assert dm(write(tmp_path, frame()), scale=False).data_spec().normalization == {}


def test_split_keys_are_disjoint_forecast_positions(tmp_path):
    m = dm(write(tmp_path, frame()))
    keys = {s: m.split_keys(s) for s in ("train", "val", "test")}
    assert [len(keys[s]) for s in keys] == [len(m.datasets[s]) for s in keys]
    assert not set(keys["test"]) & set(keys["val"]) and not set(keys["val"]) & set(keys["train"])
    first = int(keys["test"][0].split("@")[1])  # the first forecast right after the val split
    bounds = split_bounds(200, "ratio", 32)
    assert first == bounds["val"][1] and int(keys["val"][0].split("@")[1]) == bounds["train"][1]


def test_the_vocabulary_size_agrees_with_the_frequency_tokens():
    assert TTMConfig().frequency_token_vocab_size == VOCAB_SIZE


def test_long_form_and_parquet_equal_wide(tmp_path):
    f = frame()
    wide = dm(write(tmp_path, f), target_columns=["load_a", "load_b"])
    long = f.melt(id_vars="date", value_vars=["load_a", "load_b"])
    m = dm(write(tmp_path, long, "long.parquet"), layout="long")
    torch.testing.assert_close(m.datasets["train"].values, wide.datasets["train"].values)


def test_many_series_windows_never_cross_series(tmp_path):
    a, b = frame(100), frame(100)
    a["id"], b["id"] = "a", "b"
    b["load_a"] += 1000
    m = dm(write(tmp_path, pd.concat([a, b])), id_column="id", target_columns=["load_a"],
           scale=False)
    ds = m.datasets["train"]
    assert len(ds) == 2 * (70 - 40 + 1)
    windows = ds.__getitems__(list(range(len(ds))))
    whole = torch.cat([windows["past_values"], windows["target"]], 1)[..., 0]
    assert ((whole < 500).all(1) | (whole > 500).all(1)).all()


def test_few_shot_keeps_the_last_fraction(tmp_path):
    full = dm(write(tmp_path, frame()))
    few = dm(write(tmp_path, frame()), few_shot=0.1)
    starts = full.datasets["train"].starts
    assert torch.equal(few.datasets["train"].starts, starts[-round(len(starts) * 0.1):])


@pytest.mark.skipif(not ETTH1.is_file(), reason="ETTh1.csv not in ../shared/data/timeseries")
def test_ett_protocol_split_sizes():
    m = ForecastDataModule(path=str(ETTH1), split="ett_hourly", context_length=512,
                           prediction_length=96)
    m.setup()
    assert [len(m.datasets[s]) for s in ("train", "val", "test")] == [8033, 2785, 2785]
    assert m.series[0].freq == "h"


def test_ddp_ranks_get_disjoint_shares_covering_the_epoch(tmp_path):
    ds = dm(write(tmp_path, frame())).datasets["train"]
    shares = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=3))
              for r in (0, 1)]
    again = list(DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=3))
    assert shares[0] == again  # reproducible from the seed
    union = shares[0] + shares[1]
    assert set(union) == set(range(len(ds)))
    padding = len(union) - len(ds)  # DistributedSampler repeats indices to even the ranks
    assert padding == (-len(ds)) % 2 and len(set(shares[0]) & set(shares[1])) == padding


@pytest.mark.parametrize("freq, token", [("h", 7), ("15min", 5), ("D", 8), ("W-SUN", 9),
                                         ("MS", 0), ("YS", 0), ("2h", 0), ("5min", 3),
                                         ("s", 0), (None, 0)])
def test_every_pandas_frequency_gets_a_token(freq, token):
    assert resolution_token(freq) == token


def test_frequency_inference():
    assert infer_frequency(pd.date_range("2024", periods=10, freq="15min")) == "15min"
    assert infer_frequency(pd.date_range("2024", periods=10, freq="MS")) == "MS"


# ------------------------------------------------------------------------ bad input


def test_duplicate_timestamps(tmp_path):
    f = frame()
    f.loc[10, "date"] = f.loc[9, "date"]
    with pytest.raises(DomainfmError, match=r"duplicate timestamp 2024-01-01 09:00:00"):
        dm(write(tmp_path, f))


def test_unsorted_timestamps(tmp_path):
    f = frame()
    f.iloc[[10, 11]] = f.iloc[[11, 10]].to_numpy()
    with pytest.raises(DomainfmError, match=r"not sorted: .* \(row 11\) comes after"):
        dm(write(tmp_path, f))


def test_nan_is_an_error_unless_filled(tmp_path):
    f = frame()
    f.loc[20, "load_b"] = np.nan
    path = write(tmp_path, f)
    with pytest.raises(DomainfmError, match=r"1 missing value\(s\), first in column 'load_b' at "
                                            r"2024-01-01 20:00:00; pass fill_missing"):
        dm(path)
    filled = dm(path, fill_missing="interpolate", scale=False)
    value = filled.datasets["train"].values[20, 1].item()
    assert value == pytest.approx((f.loc[19, "load_b"] + f.loc[21, "load_b"]) / 2, rel=1e-5)


def test_series_shorter_than_context_plus_horizon(tmp_path):
    with pytest.raises(DomainfmError, match=r"the series has 30 rows, fewer than context_length \+ "
                                            r"prediction_length = 32 \+ 8"):
        dm(write(tmp_path, frame(30)))


def test_irregular_and_unknown_frequency(tmp_path):
    f = frame().drop(index=[50])
    with pytest.raises(DomainfmError, match=r"irregular \(most steps are 0 days 01:00:00, "
                                            r"but row 50 at 2024-01-03 03:00:00"):
        dm(write(tmp_path, f))
    with pytest.raises(DomainfmError, match="unknown frequency 'fortnightly'"):
        ForecastDataModule(path=write(tmp_path, frame()), freq="fortnightly")


def test_non_numeric_target(tmp_path):
    f = frame().astype({"load_a": object})
    f.loc[7, "load_a"] = "n/a?"
    with pytest.raises(DomainfmError, match=r"column 'load_a' must be numeric, but row 7 holds "
                                            r"'n/a\?'"):
        dm(write(tmp_path, f))


def test_missing_columns_and_file(tmp_path):
    with pytest.raises(DomainfmError, match=r"missing column\(s\) \['price'\]"):
        dm(write(tmp_path, frame()), target_columns=["price"])
    with pytest.raises(DomainfmError, match="no timestamp column 'time'"):
        dm(write(tmp_path, frame()), timestamp_column="time")
    with pytest.raises(DomainfmError, match="does not exist"):
        dm(str(tmp_path / "nope.csv"))
