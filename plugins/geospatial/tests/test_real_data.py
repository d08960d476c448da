"""The real HLS chip from ../shared/data/geospatial (beside the repository), when present.

The folder holds one chip; the chip dataset splits its chips into train, validation and test,
so these tests run on three copies of it in a temporary folder (the copies only feed the
splits: the test checks loading, training, export and georeferencing, not a score).
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data" / "geospatial"
CHIP = DATA / "hls_chip_224_input.tif"
CONFIG = REPO / "plugins" / "geospatial" / "configs" / "finetune_hls_chip.yaml"

pytestmark = pytest.mark.skipif(
    not (CHIP.is_file() and (DATA / "hls_chip_224_label.tif").is_file()),
    reason=f"real HLS chip not found in {DATA} (the shared data folder beside the repository)",
)
OVERRIDES = ["trainer.max_steps=2", "trainer.enable_progress_bar=false",
             "encoder.preset=tiny", "encoder.params.patch_size=16",  # the config runs eo2_100m widths
             "trainer.limit_val_batches=1"]


@pytest.fixture
def chips(tmp_path):
    """Three copies of the real chip and its label, one per split."""
    folder = tmp_path / "chips"
    folder.mkdir()
    for copy in "abc":
        for part in ("input", "label"):
            shutil.copy(DATA / f"hls_chip_224_{part}.tif", folder / f"hls_chip_224_{copy}_{part}.tif")
    return folder


def test_chip_loads_with_six_of_its_ten_bands(chips):
    from domainfm_geospatial.data import build_chips
    from domainfm.config import load_config

    params = load_config(CONFIG).data.params | {"root": str(chips)}
    dm = build_chips(**params)
    dm.setup()
    sample = dm.train_set[0]
    assert sample["image"].shape == (6, 1, 224, 224)
    assert abs(float(sample["image"].mean())) < 1.5  # normalised reflectance, not x10000
    assert set(sample["target"].unique().tolist()) == {0, 1}
    assert 28 < sample["location_coords"][0] < 29  # EPSG:32614 centre -> Texas


def test_finetune_export_and_predict_keep_the_georeferencing(tmp_path, chips):
    import domainfm

    run = domainfm.finetune(CONFIG, OVERRIDES + [f"output_dir={tmp_path / 'run'}",
                                                 f"data.params.root={chips}"])
    assert np.isfinite(run.metrics["train_loss"]) and "val/miou" in run.metrics
    export = domainfm.export(tmp_path / "run", tmp_path / "export")
    written = domainfm.predict(export, CHIP, tmp_path / "pred",
                               params={"progress": False, "overlap": 32, "tile_size": 224})
    with rasterio.open(CHIP) as src, rasterio.open(written[0]) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert dst.shape == src.shape == (224, 224)
        assert set(np.unique(dst.read(1))) <= {0, 1}
