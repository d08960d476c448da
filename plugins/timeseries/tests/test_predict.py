"""The CSV predictor: timestamps continue, quantile columns, exogenous checks, a PNG; it reads
the model's data specification only (columns, scaler), never the training data."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from domainfm.errors import DomainfmError
from domainfm.spec import DataSpec
from domainfm_timeseries.data.forecast import ForecastDataModule
from domainfm_timeseries.data.synthetic import synthetic_frame
from domainfm_timeseries.encoder import build_ttm
from domainfm_timeseries.heads import build_forecast_head, build_quantile_head
from domainfm_timeseries.io import Columns
from domainfm_timeseries.predict import build_csv_predictor, write_example

SYNTHETIC = Columns(("load_a", "load_b"), ("humidity",), ("temperature",))


class Model:
    """What the predictor receives from ``domainfm.load_model``: encoder, head, spec."""

    def __init__(self, head_builder=build_forecast_head, columns=SYNTHETIC, normalization=None,
                 **head_params):
        torch.manual_seed(0)
        self.encoder = build_ttm(preset="tiny").eval()
        self.head = head_builder(self.encoder, **columns.head_hints(), **head_params).eval()
        data = DataSpec(inputs=tuple(columns.inputs), normalization=normalization or {},
                        frequency="h", context_length=64, prediction_length=16,
                        task={**columns.to_task(), **columns.head_hints()})
        self.spec = SimpleNamespace(data=data)

    def __call__(self, batch):
        return self.head(self.encoder(batch), batch)


def test_exogenous_model_forecasts_the_example(tmp_path):
    m = Model()
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
    m = Model(head_builder=build_quantile_head, columns=Columns(("load_a",)),
              quantiles=[0.1, 0.5, 0.9])
    src = tmp_path / "h.csv"
    synthetic_frame(rows=120)[["date", "load_a"]].to_csv(src, index=False)
    (csv, _) = build_csv_predictor()(m, src, tmp_path / "out")
    out = pd.read_csv(csv)
    assert list(out.columns) == ["date", "load_a_q0.1", "load_a_q0.5", "load_a_q0.9", "load_a"]
    assert (out["load_a_q0.1"] <= out["load_a_q0.9"]).all()


def test_missing_exogenous_at_predict_time(tmp_path):
    m = Model()
    src = tmp_path / "h.csv"
    synthetic_frame(rows=120).to_csv(src, index=False)  # no future rows
    with pytest.raises(DomainfmError, match=r"known-future exogenous column\(s\) \['temperature'\] "
                                            r"need 16 filled rows .* found 0 rows"):
        build_csv_predictor()(m, src, tmp_path / "out")
    synthetic_frame(rows=120).drop(columns=["temperature"]).to_csv(src, index=False)
    with pytest.raises(DomainfmError, match=r"needs column\(s\) \['temperature'\]"):
        build_csv_predictor()(m, src, tmp_path / "out")


def test_the_scaler_comes_from_the_data_specification(tmp_path):
    """Inputs are scaled and forecasts unscaled with the spec's statistics: forecasting a file
    equals forecasting the standardised file with an unscaled model, then un-standardising."""
    train = tmp_path / "train.csv"
    synthetic_frame(rows=300).to_csv(train, index=False)
    datamodule = ForecastDataModule(path=str(train), context_length=64, prediction_length=16,
                                    **{"target_columns": ["load_a", "load_b"],
                                       "past_exog_columns": ["humidity"],
                                       "future_exog_columns": ["temperature"]})
    datamodule.setup()
    stats = datamodule.data_spec().normalization
    train.unlink()  # the predictor must not need it
    scaled = Model(normalization=stats)
    (csv, _) = build_csv_predictor()(scaled, write_example(tmp_path), tmp_path / "a")
    mean, std = np.array(stats["mean"]), np.array(stats["std"])
    example = pd.read_csv(tmp_path / "example_history.csv")
    columns = SYNTHETIC.inputs
    example[columns] = (example[columns] - mean) / std
    src = tmp_path / "standardised.csv"
    example.to_csv(src, index=False)
    (raw, _) = build_csv_predictor()(Model(), src, tmp_path / "b")
    expected = pd.read_csv(raw)[["load_a", "load_b"]].to_numpy() * std[:2] + mean[:2]
    np.testing.assert_allclose(pd.read_csv(csv)[["load_a", "load_b"]].to_numpy(), expected,
                               rtol=1e-4, atol=1e-4)


def test_a_model_with_no_column_roles_forecasts_every_column(tmp_path):
    """A model trained on the univariate pretraining mixture names no targets: every column of
    the file is forecast."""
    m = Model(columns=Columns(()))
    src = tmp_path / "h.csv"
    synthetic_frame(rows=120).to_csv(src, index=False)
    (csv,) = build_csv_predictor(plot=False)(m, src, tmp_path / "out")
    assert list(pd.read_csv(csv).columns) == ["date", "load_a", "load_b", "humidity", "temperature"]
