"""domainfm hooks of the time-series plugin: records pointing at the modules that do the work.

Builds are ``"module:function"`` strings imported on first use, so listing plugins imports
none of them (nor torch): only this module and ``presets.py`` load at discovery.
"""

from __future__ import annotations

from domainfm import hookimpl
from domainfm.records import (
    DatasetRecord,
    EncoderRecord,
    HeadRecord,
    MetricRecord,
    ObjectiveRecord,
    PredictorRecord,
)
from domainfm_timeseries.presets import PRESETS

_TINY = {"context_length": 64, "prediction_length": 16}
_P = "domainfm_timeseries."
_HEAD_LAYOUTS = {"granite": _P + "weights:granite_head"}


@hookimpl
def domainfm_datasets() -> list[DatasetRecord]:
    return [
        DatasetRecord(
            "timeseries.csv",
            "Forecasting windows from a CSV/Parquet table (or the embedded synthetic series).",
            _P + "data.forecast:ForecastDataModule",
            tiny_params={**_TINY, "synthetic_rows": 300, "batch_size": 8},
            default_encoder="timeseries.ttm", default_head="timeseries.forecast",
            default_metrics=("timeseries.mse", "timeseries.mae", "timeseries.mase",
                             "timeseries.smape"),
            files=_P + "data.forecast:write_files", bad_inputs=_P + "bad_inputs:forecast_cases",
            demo={"params": {**_TINY, "synthetic_rows": 600, "batch_size": 16},
                  "pretrain_steps": 100, "finetune_steps": 60},
        ),
        DatasetRecord(
            "timeseries.mixture",
            "Univariate windows from many series at native and downsampled resolutions.",
            _P + "data.mixture:PretrainMixDataModule",
            tiny_params={**_TINY, "synthetic_rows": 600, "downsample_factors": [1, 2],
                         "batch_size": 8, "stride": 4},
            default_encoder="timeseries.ttm", default_head="timeseries.quantile_forecast",
            default_metrics=("timeseries.wql", "timeseries.crps", "timeseries.mae"),
            files=_P + "data.mixture:write_files", bad_inputs=_P + "bad_inputs:mixture_cases",
        ),
    ]


@hookimpl
def domainfm_encoders() -> list[EncoderRecord]:
    return [EncoderRecord(
        "timeseries.ttm", "Tiny Time Mixer backbone (granite-tsfm layout; presets tiny, r2_512_96).",
        _P + "encoder:build_ttm", presets=PRESETS, default_dataset="timeseries.mixture",
        default_objective="timeseries.forecasting", benchmark_preset="r2_512_96",
        benchmark_data={"context_length": 512, "prediction_length": 96, "synthetic_rows": 4000,
                        "batch_size": 512},
        weights={"granite": _P + "weights:granite_encoder"})]


@hookimpl
def domainfm_objectives() -> list[ObjectiveRecord]:
    return [ObjectiveRecord("timeseries.forecasting",
                            "Forecasting loss of a TTM decoder + head (TTM's pretraining task).",
                            _P + "objective:build_forecasting_objective",
                            weights={"granite": _P + "weights:granite_objective"})]


@hookimpl
def domainfm_heads() -> list[HeadRecord]:
    return [
        HeadRecord("timeseries.forecast",
                   "TTM decoder + linear forecast head, optional exogenous infusion (MSE).",
                   _P + "heads:build_forecast_head", weights=_HEAD_LAYOUTS),
        HeadRecord("timeseries.quantile_forecast",
                   "TTM decoder + head forecasting chosen quantiles (pinball loss).",
                   _P + "heads:build_quantile_head", weights=_HEAD_LAYOUTS),
    ]


@hookimpl
def domainfm_metrics() -> list[MetricRecord]:
    m = _P + "metrics:"
    return [
        MetricRecord("timeseries.mse", "Mean squared error (on scaled data in the papers).",
                     m + "ForecastMSE"),
        MetricRecord("timeseries.mae", "Mean absolute error.", m + "ForecastMAE"),
        MetricRecord("timeseries.mase", "Mean absolute scaled error (seasonal naive scale).",
                     m + "MASE"),
        MetricRecord("timeseries.smape", "Symmetric mean absolute percentage error.", m + "SMAPE"),
        MetricRecord("timeseries.wql", "Weighted quantile loss (mean over quantile levels).",
                     m + "WeightedQuantileLoss"),
        MetricRecord("timeseries.crps", "CRPS approximated from quantile forecasts.", m + "CRPS"),
    ]


@hookimpl
def domainfm_predictors() -> list[PredictorRecord]:
    return [PredictorRecord("timeseries.forecast_csv",
                            "CSV history in, CSV of forecasts with continued timestamps + PNG out.",
                            _P + "predict:build_csv_predictor", dataset="timeseries.csv",
                            example=_P + "predict:write_example",
                            bad_inputs=_P + "bad_inputs:predictor_cases")]
