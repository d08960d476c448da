"""domainfm-geospatial: a Prithvi-compatible temporal ViT MAE for Earth observation, on torchgeo."""

__version__ = "0.1.0"
