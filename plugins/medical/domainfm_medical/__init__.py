"""domainfm-medical: BM-MAE, a multimodal 3D brain-MRI masked autoencoder, on MONAI.

Components (see ``plugin.py``): dataset ``medical.synthetic_brains``/``medical.synthetic_grades``
/``medical.brain_mri``, encoder ``medical.bmmae``, objective ``medical.multimodal_mae``, heads
``medical.segmentation``/``medical.classification``, metrics ``medical.dice``/``medical.hd95``/
``medical.auroc``/``medical.accuracy``, predictors ``medical.segment``/``medical.reconstruct``.
"""

__version__ = "0.1.0"
