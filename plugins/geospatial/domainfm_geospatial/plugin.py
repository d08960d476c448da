"""Hook implementations only: records pointing at the modules that do the work.

Builds are named as ``"module:function"`` strings, so listing plugins imports none of them (nor
torch): only this module and ``presets.py`` load when the host discovers the plugin. Heads and
metrics take ``num_classes``, ``num_frames`` and ``ignore_index`` from the data specification.
"""

import functools

from domainfm import hookimpl
from domainfm.records import (
    DatasetRecord,
    EncoderRecord,
    HeadRecord,
    LazyBuild,
    MetricRecord,
    ObjectiveRecord,
    PredictorRecord,
)

from domainfm_geospatial.presets import PRESETS

_DATA = "domainfm_geospatial.data"
_SEGMENTATION_METRICS = ("geospatial.miou", "geospatial.class_iou", "geospatial.f1",
                         "geospatial.pixel_accuracy")
_TINY_WATER = {"places": 4, "size": 32, "chip_size": 32, "batch_size": 2}


def _water(target: str) -> functools.partial:
    return functools.partial(LazyBuild(f"{_DATA}.water:build_water"), target=target)


@hookimpl
def domainfm_datasets():
    return [
        DatasetRecord(
            "geospatial.water", "Embedded HLS-like 3-date GeoTIFF scenes with a water class "
            "(generated from a seed).", f"{_DATA}.water:build_water", tiny_params=_TINY_WATER,
            default_encoder="geospatial.prithvi", default_head="geospatial.segmentation",
            default_metrics=_SEGMENTATION_METRICS, files=f"{_DATA}.water:write_files",
            demo={"params": {"places": 8, "size": 64, "chip_size": 32, "batch_size": 8},
                  "pretrain_steps": 150, "finetune_steps": 40,
                  "finetune_params": {"places": 8, "size": 64, "chip_size": 32, "batch_size": 4,
                                      "max_train_samples": 8}},
        ),
        DatasetRecord(
            "geospatial.water_scenes", "Embedded water scenes labelled as a whole: does water "
            "cover more than a fifth of the window?", _water("scene"),
            tiny_params={"places": 4, "size": 32, "chip_size": 16, "stride": 8, "batch_size": 4},
            default_encoder="geospatial.prithvi", default_head="geospatial.classification",
            default_metrics=("geospatial.f1",),
        ),
        DatasetRecord(
            "geospatial.water_ndwi", "Embedded water scenes with a per-pixel water index (NDWI) "
            "to regress.", _water("ndwi"), tiny_params=_TINY_WATER,
            default_encoder="geospatial.prithvi", default_head="geospatial.regression",
            default_metrics=("geospatial.rmse",),
        ),
        DatasetRecord(
            "geospatial.scenes", "Dated multi-band GeoTIFF time series <place>_<YYYYMMDD>.tif "
            "sampled with torchgeo geo samplers.", f"{_DATA}.scenes:build_scenes",
            tiny_params={"generate": True, "places": 4, "size": 32, "chip_size": 32,
                         "batch_size": 2},
            default_encoder="geospatial.prithvi", default_head="geospatial.segmentation",
            default_metrics=_SEGMENTATION_METRICS, files=f"{_DATA}.scenes:write_files",
            bad_inputs=f"{_DATA}.broken:scene_cases",
        ),
        DatasetRecord(
            "geospatial.chips", "Pre-chipped image/label GeoTIFF pairs (Sen1Floods11, HLS burn "
            "scars layouts).", f"{_DATA}.chips:build_chips",
            tiny_params={"generate": True, "chips": 4, "size": 32, "batch_size": 2},
            default_encoder="geospatial.prithvi", default_head="geospatial.segmentation",
            default_metrics=_SEGMENTATION_METRICS, files=f"{_DATA}.chips:write_files",
            bad_inputs=f"{_DATA}.broken:chip_cases",
        ),
    ]


@hookimpl
def domainfm_encoders():
    return [EncoderRecord(
        "geospatial.prithvi", "Prithvi EO-1.0/EO-2.0 temporal ViT with 3D sin-cos positions and "
        "optional time/location encodings.", "domainfm_geospatial.encoder:build_prithvi",
        presets=PRESETS, default_dataset="geospatial.water", default_objective="geospatial.mae",
        benchmark_preset="eo2_100m",
        benchmark_data={"places": 4, "size": 224, "chip_size": 224, "num_frames": 4,
                        "batch_size": 32},
        weights={"prithvi": "domainfm_geospatial.weights:prithvi"},
    )]


@hookimpl
def domainfm_objectives():
    return [ObjectiveRecord("geospatial.mae", "Prithvi masked autoencoder: 75% of tubelets "
                            "masked, MSE on the masked ones.", "domainfm_geospatial.objective:build_mae",
                            weights={"prithvi": "domainfm_geospatial.weights:prithvi_mae"})]


@hookimpl
def domainfm_heads():
    return [
        HeadRecord("geospatial.segmentation", "Neck over intermediate layers + upsampling "
                   "decoder to per-pixel class logits.", "domainfm_geospatial.heads:build_segmentation"),
        HeadRecord("geospatial.regression", "Neck over intermediate layers + upsampling decoder "
                   "to one value per pixel.", "domainfm_geospatial.heads:build_regression"),
        HeadRecord("geospatial.classification", "Scene label from the mean-pooled tokens.",
                   "domainfm_geospatial.heads:build_classification"),
    ]


@hookimpl
def domainfm_metrics():
    return [
        MetricRecord("geospatial.miou", "Mean IoU over classes (macro, as the Prithvi papers "
                     "report).", "domainfm_geospatial.metrics:build_miou"),
        MetricRecord("geospatial.class_iou", "IoU of one class (e.g. water).",
                     "domainfm_geospatial.metrics:build_class_iou"),
        MetricRecord("geospatial.f1", "Macro F1 over classes.", "domainfm_geospatial.metrics:build_f1"),
        MetricRecord("geospatial.pixel_accuracy", "Share of correctly classified pixels.",
                     "domainfm_geospatial.metrics:build_pixel_accuracy"),
        MetricRecord("geospatial.rmse", "Root mean squared error over valid pixels.",
                     "domainfm_geospatial.metrics:build_rmse"),
    ]


@hookimpl
def domainfm_predictors():
    return [PredictorRecord(
        "geospatial.geotiff", "Whole-scene GeoTIFF -> GeoTIFF of classes on the same grid, in "
        "overlapping blended tiles.", "domainfm_geospatial.predict:build_predictor",
        dataset="geospatial.water", example="domainfm_geospatial.predict:write_example",
        bad_inputs=f"{_DATA}.broken:geotiff_cases",
    )]
