"""Hook implementations only: records that point at the modules that do the work."""

from domainfm import hookimpl
from domainfm.records import (
    DatasetRecord,
    EncoderRecord,
    HeadRecord,
    MetricRecord,
    ObjectiveRecord,
    PredictorRecord,
)

# Builds are named as "module:function" strings: listing plugins imports none of them.
PRESETS = {
    "tiny": {"patch": 4, "width": 32, "depth": 2, "heads": 2},
    "small": {"patch": 4, "width": 64, "depth": 4, "heads": 4},
}


@hookimpl
def domainfm_datasets():
    return [DatasetRecord(
        "example.waves", "Noisy sine waves whose frequency is the class (generated).",
        "domainfm_example.data:WavesDataModule", tiny_params={"num_samples": 64, "batch_size": 8},
        default_encoder="example.patch_transformer", default_head="example.classifier",
        default_metrics=("example.accuracy",),
        demo={"params": {"num_samples": 1024, "batch_size": 32}, "pretrain_steps": 200,
              "finetune_params": {"num_samples": 96, "batch_size": 16}, "finetune_steps": 30,
              "lr": 2e-3},
    )]


@hookimpl
def domainfm_encoders():
    return [EncoderRecord(
        "example.patch_transformer", "A small transformer over 1D signal patches.",
        "domainfm_example.model:build_encoder", presets=PRESETS, default_dataset="example.waves",
        default_objective="example.masked_patches",
    )]


@hookimpl
def domainfm_objectives():
    return [ObjectiveRecord("example.masked_patches", "Regress hidden patches from visible ones.",
                            "domainfm_example.model:MaskedPatches")]


@hookimpl
def domainfm_heads():
    return [HeadRecord("example.classifier", "Linear classifier on the pooled embedding.",
                       "domainfm_example.model:ClassifierHead")]


@hookimpl
def domainfm_metrics():
    return [MetricRecord("example.accuracy", "Share of correctly classified signals.", "domainfm_example.model:accuracy")]


@hookimpl
def domainfm_predictors():
    return [PredictorRecord("example.csv", "Class of each signal in a CSV (one signal per row).",
                            "domainfm_example.predict:build_predictor",
                            dataset="example.waves",
                            example="domainfm_example.predict:write_example")]
