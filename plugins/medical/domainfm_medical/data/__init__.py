"""Multimodal brain-MRI data: case discovery (``cases``), MONAI transforms (``transforms``), the
datamodule and its builds (``datamodule``), the embedded synthetic brains (``synthetic``) and the
harness's files and broken inputs (``fixtures``).

The dataset records name ``domainfm_medical.data:brain_mri``, ``:synthetic_brains`` and
``:synthetic_grades``, re-exported here.
"""

from domainfm_medical.data.cases import BRATS_LABELS, MODALITIES, case_from_folder, discover_cases
from domainfm_medical.data.datamodule import (
    BrainMRIDataModule,
    SyntheticBrainsDataModule,
    brain_mri,
    synthetic_brains,
    synthetic_grades,
)

__all__ = ["BRATS_LABELS", "BrainMRIDataModule", "MODALITIES", "SyntheticBrainsDataModule",
           "brain_mri", "case_from_folder", "discover_cases", "synthetic_brains", "synthetic_grades"]
