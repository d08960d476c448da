"""The real HLS chip from ../shared/data/geospatial (beside the repository), when present.

The folder holds one chip; the config cuts it into four 112 px tiles (``tile_size``) and splits
the tiles into train, validation and test, so the real chip runs alone, no pixel in two splits
(the tests check loading, tiling, training, evaluation, export and georeferencing, not a score).
"""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

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
             f"data.params.root={DATA}"]


def test_chip_loads_with_six_of_its_ten_bands_as_four_disjoint_tiles():
    from domainfm.config import load_config
    from domainfm_geospatial.data import build_chips
    from domainfm_geospatial.data.chips import ChipDataset

    params = load_config(CONFIG).data.params | {"root": str(DATA)}
    dm = build_chips(**params)
    dm.setup()
    keys = {s: dm.split_keys(s) for s in ("train", "val", "test")}
    assert [len(keys[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    origins = sorted(k.split("@")[1] for ks in keys.values() for k in ks)
    assert origins == ["0,0", "0,112", "112,0", "112,112"]  # the chip, each pixel in one split
    full = ChipDataset([(CHIP, DATA / "hls_chip_224_label.tif", None)], dm.prep, None,
                       dm.ignore_index, dm.label_nodata)[0]  # the whole chip, untiled
    for split in ("train", "val", "test"):
        for key, sample in zip(keys[split], dm.sets[split]):
            row, col = map(int, key.split("@")[1].split(","))
            assert sample["image"].shape == (6, 1, 112, 112)
            assert torch.equal(sample["image"], full["image"][..., row:row + 112, col:col + 112])
            assert torch.equal(sample["target"], full["target"][row:row + 112, col:col + 112])
            assert 28 < sample["location_coords"][0] < 29  # EPSG:32614 -> Texas
    assert abs(float(full["image"].mean())) < 1.5  # normalised reflectance, not x10000
    assert set(full["target"].unique().tolist()) == {0, 1}


def test_finetune_evaluate_export_and_predict_keep_the_georeferencing(tmp_path):
    import domainfm

    run = domainfm.finetune(CONFIG, OVERRIDES + [f"output_dir={tmp_path / 'run'}"])
    assert np.isfinite(run.metrics["train_loss"]) and "val/miou" in run.metrics
    scores = domainfm.evaluate(CONFIG, OVERRIDES + [f"init={tmp_path / 'run'}",
                                                    f"output_dir={tmp_path / 'eval'}"]).metrics
    assert 0 <= scores["test/miou"] <= 1 and 0 <= scores["test/pixel_accuracy"] <= 1
    export = domainfm.export(tmp_path / "run", tmp_path / "export")
    written = domainfm.predict(export, CHIP, tmp_path / "pred",
                               params={"progress": False, "overlap": 32, "tile_size": 224})
    with rasterio.open(CHIP) as src, rasterio.open(written[0]) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert dst.shape == src.shape == (224, 224)
        assert set(np.unique(dst.read(1))) <= {0, 1}
