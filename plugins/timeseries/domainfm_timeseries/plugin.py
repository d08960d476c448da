"""domainfm hooks of the time-series plugin: TTM forecasting components."""

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
from domainfm_timeseries.encoder import PRESETS  # builds below are imported on first use

_TINY = {"context_length": 64, "prediction_length": 16}


@hookimpl
def domainfm_datasets() -> list[DatasetRecord]:
    return [
        DatasetRecord(
            "timeseries.csv",
            "Forecasting windows from a CSV/Parquet table (or the embedded synthetic series).",
            "domainfm_timeseries.data:ForecastDataModule",
            tiny_params={**_TINY, "synthetic_rows": 300, "batch_size": 8},
            default_encoder="timeseries.ttm", default_head="timeseries.forecast",
            head_params={"prediction_channels": [0, 1], "exogenous_channels": [3]},
            default_metrics=("timeseries.mse", "timeseries.mae", "timeseries.mase",
                             "timeseries.smape"),
            demo={"params": {**_TINY, "synthetic_rows": 600, "batch_size": 16}, "pretrain_steps": 100, "finetune_steps": 60},
        ),
        DatasetRecord(
            "timeseries.mixture",
            "Univariate windows from many series at native and downsampled resolutions.",
            "domainfm_timeseries.mixture:PretrainMixDataModule",
            tiny_params={**_TINY, "synthetic_rows": 600, "downsample_factors": [1, 2],
                         "batch_size": 8, "stride": 4},
            default_encoder="timeseries.ttm", default_head="timeseries.quantile_forecast",
            default_metrics=("timeseries.wql", "timeseries.crps", "timeseries.mae"),
        ),
    ]


@hookimpl
def domainfm_encoders() -> list[EncoderRecord]:
    return [EncoderRecord(
        "timeseries.ttm", "Tiny Time Mixer backbone (granite-tsfm layout; presets tiny, r2_512_96).",
        "domainfm_timeseries.encoder:build_ttm", presets=PRESETS, default_dataset="timeseries.mixture",
        default_objective="timeseries.forecasting")]


@hookimpl
def domainfm_objectives() -> list[ObjectiveRecord]:
    return [ObjectiveRecord("timeseries.forecasting",
                            "Forecasting loss of a TTM decoder + head (TTM's pretraining task).",
                            "domainfm_timeseries.objective:build_forecasting_objective")]


@hookimpl
def domainfm_heads() -> list[HeadRecord]:
    return [
        HeadRecord("timeseries.forecast",
                   "TTM decoder + linear forecast head, optional exogenous infusion (MSE).",
                   "domainfm_timeseries.heads:build_forecast_head"),
        HeadRecord("timeseries.quantile_forecast",
                   "TTM decoder + head forecasting chosen quantiles (pinball loss).",
                   "domainfm_timeseries.heads:build_quantile_head"),
    ]


@hookimpl
def domainfm_metrics() -> list[MetricRecord]:
    return [
        MetricRecord("timeseries.mse", "Mean squared error (on scaled data in the papers).",
                     "domainfm_timeseries.metrics:ForecastMSE"),
        MetricRecord("timeseries.mae", "Mean absolute error.", "domainfm_timeseries.metrics:ForecastMAE"),
        MetricRecord("timeseries.mase", "Mean absolute scaled error (seasonal naive scale).",
                     "domainfm_timeseries.metrics:MASE"),
        MetricRecord("timeseries.smape", "Symmetric mean absolute percentage error.",
                     "domainfm_timeseries.metrics:SMAPE"),
        MetricRecord("timeseries.wql", "Weighted quantile loss (mean over quantile levels).",
                     "domainfm_timeseries.metrics:WeightedQuantileLoss"),
        MetricRecord("timeseries.crps", "CRPS approximated from quantile forecasts.",
                     "domainfm_timeseries.metrics:CRPS"),
    ]


@hookimpl
def domainfm_predictors() -> list[PredictorRecord]:
    return [PredictorRecord("timeseries.forecast_csv",
                            "CSV history in, CSV of forecasts with continued timestamps + PNG out.",
                            "domainfm_timeseries.predict:build_csv_predictor", dataset="timeseries.csv", example="domainfm_timeseries.predict:write_example")]
