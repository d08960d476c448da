"""Hook implementations only: records that point at the modules that do the work.

Builds are named as ``"module:function"`` strings, so listing plugins imports none of them
(nor torch): only this module and ``presets.py`` load when the host discovers the plugin.
"""

from domainfm import hookimpl
from domainfm.records import (
    DatasetRecord,
    EncoderRecord,
    HeadRecord,
    MetricRecord,
    ObjectiveRecord,
    PredictorRecord,
)

from domainfm_example.presets import PRESETS


@hookimpl
def domainfm_datasets():
    return [DatasetRecord(
        "example.waves", "Noisy sine waves whose frequency is the class (generated, or a CSV).",
        "domainfm_example.data:WavesDataModule", tiny_params={"num_samples": 64, "batch_size": 8},
        default_encoder="example.patch_transformer", default_head="example.classifier",
        default_metrics=("example.accuracy",),
        files="domainfm_example.data:write_files", bad_inputs="domainfm_example.data:bad_inputs",
        demo={"params": {"num_samples": 1024, "batch_size": 32}, "pretrain_steps": 200,
              "finetune_params": {"num_samples": 96, "batch_size": 16}, "finetune_steps": 30,
              "lr": 2e-3},
    )]


@hookimpl
def domainfm_encoders():
    return [EncoderRecord(
        "example.patch_transformer", "A small transformer over 1D signal patches.",
        "domainfm_example.encoder:build_encoder", presets=PRESETS, default_dataset="example.waves",
        default_objective="example.masked_patches", benchmark_preset="small",
        benchmark_data={"num_samples": 2048, "length": 256, "batch_size": 256},
        weights={"plain": "domainfm_example.weights:plain_state_dict"},
    )]


@hookimpl
def domainfm_objectives():
    return [ObjectiveRecord("example.masked_patches", "Regress hidden patches from visible ones.",
                            "domainfm_example.objective:MaskedPatches")]


@hookimpl
def domainfm_heads():
    return [HeadRecord("example.classifier", "Linear classifier on the pooled embedding.",
                       "domainfm_example.heads:ClassifierHead")]


@hookimpl
def domainfm_metrics():
    return [MetricRecord("example.accuracy", "Share of correctly classified signals.",
                         "domainfm_example.metrics:accuracy")]


@hookimpl
def domainfm_predictors():
    return [PredictorRecord("example.csv", "Class of each signal in a CSV (one signal per row).",
                            "domainfm_example.predict:build_predictor", dataset="example.waves",
                            example="domainfm_example.predict:write_example",
                            bad_inputs="domainfm_example.predict:bad_inputs")]
