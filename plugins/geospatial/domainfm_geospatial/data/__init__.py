"""Geospatial datasets, one module per kind: shared preprocessing (:mod:`.preprocess`), dated
scenes (:mod:`.scenes`), pre-chipped pairs (:mod:`.chips`), the embedded water data
(:mod:`.water`) and label checks (:mod:`.labels`)."""

from domainfm_geospatial.data.chips import ChipDataModule, build_chips
from domainfm_geospatial.data.preprocess import Preprocess, lat_lon, parse_dates
from domainfm_geospatial.data.scenes import SceneDataModule, build_scenes
from domainfm_geospatial.data.water import build_water

__all__ = ["ChipDataModule", "Preprocess", "SceneDataModule", "build_chips", "build_scenes",
           "build_water", "lat_lon", "parse_dates"]
