"""The CSV predictor: timestamps continue, quantile columns, exogenous checks, a PNG."""

import pandas as pd
import pytest
import torch

from domainfm.host import DomainfmError
from domainfm_timeseries.encoder import build_ttm
from domainfm_timeseries.heads import build_forecast_head, build_quantile_head
from domainfm_timeseries.predict import build_csv_predictor, write_example
from domainfm_timeseries.synthetic import synthetic_frame


class Model:
    """What the predictor receives from ``domainfm.load_model``: encoder, head, config."""

    def __init__(self, head_builder=build_forecast_head, data_params=None, **head_params):
        torch.manual_seed(0)
        self.encoder = build_ttm(preset="tiny").eval()
        self.head = head_builder(self.encoder, **head_params).eval()
        self.config = {"data": {"name": "timeseries.csv", "params": {
            "context_length": 64, "prediction_length": 16, "synthetic_rows": 300,
            **(data_params or {})}}}

    def __call__(self, batch):
        return self.head(self.encoder(batch), batch)


def test_exogenous_model_forecasts_the_example(tmp_path):
    m = Model(prediction_channels=[0, 1], exogenous_channels=[3])
    written = build_csv_predictor()(m, write_example(tmp_path), tmp_path / "out")
    csv, png = written
    out = pd.read_csv(csv, parse_dates=["date"])
    history = pd.read_csv(tmp_path / "example_history.csv", parse_dates=["date"])
    last = history.loc[history["load_a"].notna(), "date"].iloc[-1]
    assert list(out.columns) == ["date", "load_a", "load_b"] and len(out) == 16
    assert out["date"].iloc[0] == last + pd.Timedelta(hours=1)
    assert (out["date"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_quantile_columns(tmp_path):
    m = Model(head_builder=build_quantile_head, quantiles=[0.1, 0.5, 0.9],
              data_params={"target_columns": ["load_a"], "path": "unused.csv"})
    src = tmp_path / "h.csv"
    synthetic_frame(rows=120)[["date", "load_a"]].to_csv(src, index=False)
    (csv, _) = build_csv_predictor()(m, src, tmp_path / "out")
    out = pd.read_csv(csv)
    assert list(out.columns) == ["date", "load_a_q0.1", "load_a_q0.5", "load_a_q0.9", "load_a"]
    assert (out["load_a_q0.1"] <= out["load_a_q0.9"]).all()


def test_missing_exogenous_at_predict_time(tmp_path):
    m = Model(prediction_channels=[0, 1], exogenous_channels=[3])
    src = tmp_path / "h.csv"
    synthetic_frame(rows=120).to_csv(src, index=False)  # no future rows
    with pytest.raises(DomainfmError, match=r"known-future exogenous column\(s\) \['temperature'\] "
                                            r"need 16 filled rows .* found 0 rows"):
        build_csv_predictor()(m, src, tmp_path / "out")
    synthetic_frame(rows=120).drop(columns=["temperature"]).to_csv(src, index=False)
    with pytest.raises(DomainfmError, match=r"needs column\(s\) \['temperature'\]"):
        build_csv_predictor()(m, src, tmp_path / "out")
