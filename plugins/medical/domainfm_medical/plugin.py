"""Hook implementations only: records that point at the modules that do the work.

Builds are ``"module:function"`` strings, so listing plugins imports none of them (nor torch):
only this module and ``presets.py`` load when the host discovers the plugin. Heads and metrics
take ``num_classes``, ``activation`` and ``spacing`` from the data specification.
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
from domainfm_medical.presets import PRESETS

# batches of two: PyTorch sends a batch of ONE small 3D volume with few channels to its slow
# convolution (slow_conv3d), and the UNETR head then costs 1.5x what a batch of two does on oneDNN
TINY_DATA = {"num_cases": 8, "batch_size": 2, "val_fraction": 0.25}
FIXTURES = "domainfm_medical.data.fixtures"


@hookimpl
def domainfm_datasets() -> list[DatasetRecord]:
    return [
        DatasetRecord("medical.synthetic_brains",
                      "Synthetic 4-modality brain MRI (32^3) with BraTS-style tumour masks and a grade label.",
                      "domainfm_medical.data:synthetic_brains", tiny_params=TINY_DATA,
                      default_encoder="medical.bmmae", default_head="medical.segmentation",
                      default_metrics=("medical.dice", "medical.hd95"),
                      files=f"{FIXTURES}:synthetic_files",
                      # the learning benchmark's recipe at a demo's scale (see BENCHMARKS.md)
                      demo={"params": {"num_cases": 32, "batch_size": 4}, "pretrain_steps": 400,
                            "pretrain_optim": {"lr": 1.5e-3, "weight_decay": 0.05, "warmup": 0.05},
                            "finetune_params": {"num_cases": 32, "batch_size": 2, "train_cases": 4,
                                                "modality_dropout": 0.3},
                            "finetune_steps": 150,
                            "finetune_optim": {"lr": 2e-4, "weight_decay": 0.05, "head_lr_scale": 10}}),
        DatasetRecord("medical.synthetic_grades",
                      "The synthetic brains as a case-classification task (tumour grade).",
                      "domainfm_medical.data:synthetic_grades", tiny_params=TINY_DATA,
                      default_encoder="medical.bmmae", default_head="medical.classification",
                      default_metrics=("medical.auroc", "medical.accuracy"),
                      files=f"{FIXTURES}:synthetic_files"),
        DatasetRecord("medical.brain_mri",
                      "Your multimodal NIfTI cases from a folder or a CSV/JSON manifest (MONAI transforms).",
                      "domainfm_medical.data:brain_mri", default_encoder="medical.bmmae",
                      tiny_params={"batch_size": 2, "val_fraction": 0.25, "roi_size": 32, "num_workers": 0,
                                   "synthetic_cases": 8},
                      default_metrics=("medical.dice", "medical.hd95"),
                      files=f"{FIXTURES}:brain_mri_files", bad_inputs=f"{FIXTURES}:dataset_bad_inputs"),
    ]


@hookimpl
def domainfm_encoders() -> list[EncoderRecord]:
    return [EncoderRecord("medical.bmmae",
                          "BM-MAE multimodal 3D ViT: per-modality patch tokenizers, any modality subset.",
                          "domainfm_medical.encoder:build_encoder", presets=PRESETS,
                          default_dataset="medical.synthetic_brains",
                          default_objective="medical.multimodal_mae", benchmark_preset="base",
                          benchmark_data={"num_cases": 8, "size": 128, "roi_size": 128, "augment": False,
                                          "val_fraction": 0.25, "test_fraction": 0.25, "batch_size": 4},
                          weights={"bmmae": "domainfm_medical.weights:bmmae_encoder"})]


@hookimpl
def domainfm_objectives() -> list[ObjectiveRecord]:
    return [ObjectiveRecord("medical.multimodal_mae",
                            "BM-MAE pretraining: 75% masking, Dirichlet budget across modalities, masked MSE.",
                            "domainfm_medical.objective:build_objective",
                            weights={"bmmae": "domainfm_medical.weights:bmmae_decoder"})]


@hookimpl
def domainfm_heads() -> list[HeadRecord]:
    return [
        HeadRecord("medical.segmentation", "UNETR-style 3D segmentation (sigmoid TC/WT/ET or softmax classes).",
                   "domainfm_medical.heads:build_segmentation"),
        HeadRecord("medical.classification", "Case classification from the cls token.",
                   "domainfm_medical.heads:build_classification"),
    ]


@hookimpl
def domainfm_metrics() -> list[MetricRecord]:
    return [
        MetricRecord("medical.dice", "Dice per class (empty reference and prediction score 1).",
                     "domainfm_medical.metrics:build_dice"),
        MetricRecord("medical.hd95", "95th-percentile Hausdorff distance in mm (a missed structure scores the worst).",
                     "domainfm_medical.metrics:build_hd95"),
        MetricRecord("medical.auroc", "ROC-AUC of case classification.", "domainfm_medical.metrics:build_auroc"),
        MetricRecord("medical.accuracy", "Accuracy of case classification.", "domainfm_medical.metrics:build_accuracy"),
    ]


@hookimpl
def domainfm_predictors() -> list[PredictorRecord]:
    return [
        PredictorRecord("medical.segment", "NIfTI case in, NIfTI tumour segmentation out (input affine and shape).",
                        "domainfm_medical.predict:build_segment", dataset="medical.synthetic_brains",
                        example=f"{FIXTURES}:harness_case", bad_inputs=f"{FIXTURES}:predictor_bad_inputs"),
        PredictorRecord("medical.reconstruct",
                        "NIfTI case in, its missing modalities reconstructed as NIfTI (input affine).",
                        "domainfm_medical.predict:build_reconstruct", dataset="medical.synthetic_brains",
                        stage="pretrain", example=f"{FIXTURES}:harness_case",
                        bad_inputs=f"{FIXTURES}:reconstruct_bad_inputs"),
    ]
