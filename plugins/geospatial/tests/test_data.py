import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch.utils.data import DistributedSampler

from domainfm.errors import DomainfmError
from domainfm_geospatial.bands import EO2_MEAN, EO2_STD, HLS_BANDS
from domainfm_geospatial.data import build_chips, build_scenes, build_water
from domainfm_geospatial.io import write_geotiff
from domainfm_geospatial.synthetic import CRS_UTM14N, DATES, make_chips, make_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("scenes"), places=5, size=32)


def test_generated_scenes_are_georeferenced_dated_stacks(scenes):
    files = sorted(p.name for p in scenes.glob("scene00_*.tif"))
    assert files == [f"scene00_{d}.tif" for d in DATES] + ["scene00_mask.tif"]
    with rasterio.open(scenes / f"scene01_{DATES[0]}.tif") as src:
        assert src.count == 6 and src.crs == CRS_UTM14N and src.res == (30.0, 30.0)
        assert list(src.descriptions) == list(HLS_BANDS)
    with rasterio.open(scenes / "scene01_mask.tif") as src:
        water = src.read(1)
    assert 0.05 < (water == 1).mean() < 0.6  # a class to learn, not a constant


def test_batches_are_normalised_stacks_with_dates_and_labels(scenes):
    dm = build_scenes(root=str(scenes), chip_size=32, batch_size=2, val_fraction=0.25)
    dm.setup("fit")
    assert len(dm.train_set) == 3 and len(dm.val_set) == 1  # split by place
    assert len(dm.test_set) == 1
    places = {split: {key[0] for key in dm.split_keys(split)} for split in ("train", "val", "test")}
    assert not places["test"] & (places["val"] | places["train"])  # a test place is only in test
    sample = dm.train_set[0]
    assert sample["image"].shape == (6, 3, 32, 32)
    assert sample["temporal_coords"][:, 1].tolist() == [105.0, 196.0, 288.0]
    assert 28 < sample["location_coords"][0] < 29 and -100 < sample["location_coords"][1] < -99
    assert set(sample["target"].unique().tolist()) <= {-1, 0, 1}
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 6, 3, 32, 32) and batch["temporal_coords"].shape == (2, 3, 2)


def test_normalisation_uses_prithvi_statistics(tmp_path):
    image = np.stack([np.full((16, 16), m + 2 * s, np.float32) for m, s in zip(EO2_MEAN, EO2_STD)])
    for name in "abc":  # three chips: one per split
        write_geotiff(tmp_path / f"{name}_input.tif", image, crs=CRS_UTM14N,
                      transform=from_origin(0, 0, 30, 30))
        write_geotiff(tmp_path / f"{name}_label.tif", np.ones((16, 16), np.uint8), crs=CRS_UTM14N,
                      transform=from_origin(0, 0, 30, 30))
    dm = build_chips(root=str(tmp_path))
    dm.setup()
    assert torch.allclose(dm.train_set[0]["image"], torch.full((6, 1, 16, 16), 2.0))


def test_nodata_pixels_are_zeroed_and_ignored(scenes):
    dm = build_scenes(root=str(scenes), chip_size=32, val_fraction=0.25, seed=0)
    dm.setup()
    for split in (dm.train_set, dm.val_set, dm.test_set):
        for i in range(len(split)):
            s = split[i]
            if (s["target"][:, :4] == -1).all():  # place 0: nodata margin
                assert torch.all(s["image"][:, :, :, :4] == 0)
                return
    pytest.fail("place 0 with its nodata margin was not found")


def test_bands_by_name_or_index_with_their_statistics(tmp_path):
    make_chips(tmp_path, chips=3, size=16)
    by_name = build_chips(root=str(tmp_path), bands=["NIR_NARROW", "RED"])
    by_index = build_chips(root=str(tmp_path), bands=[3, 2])
    for dm in (by_name, by_index):
        dm.setup()
    a, b = by_name.train_set[0]["image"], by_index.train_set[0]["image"]
    assert a.shape == (2, 1, 16, 16) and torch.equal(a, b)
    assert by_name.prep.mean.tolist() == [EO2_MEAN[3], EO2_MEAN[2]]
    with pytest.raises(DomainfmError, match="unknown band 'NIR'.*BLUE, GREEN"):
        build_chips(root=str(tmp_path), bands=["NIR"])
    with pytest.raises(DomainfmError, match="band index 7 is out of range.*6 bands"):
        build_chips(root=str(tmp_path), bands=[7])
    with pytest.raises(DomainfmError, match="no default normalisation for bands.*B9"):
        build_chips(root=str(tmp_path), file_bands=[f"B{i}" for i in range(10)], bands=[9])


@pytest.mark.parametrize("build", ["scenes", "chips"])
def test_ddp_ranks_get_disjoint_shares_of_the_epoch(scenes, tmp_path, build):
    if build == "scenes":
        dm = build_scenes(root=str(scenes), chip_size=16, val_fraction=0.25)
    else:
        dm = build_chips(root=str(make_chips(tmp_path, chips=7, size=16)), val_fraction=0.0)
    dm.setup()
    n = len(dm.train_set)
    shares = [list(DistributedSampler(dm.train_set, num_replicas=2, rank=r, shuffle=True, seed=3))
              for r in range(2)]
    again = list(DistributedSampler(dm.train_set, num_replicas=2, rank=0, shuffle=True, seed=3))
    assert shares[0] == again  # reproducible from the seed
    union = shares[0] + shares[1]
    assert set(union) == set(range(n))
    # DistributedSampler pads with repeated samples to an even split: at most one here
    assert len(union) - n == (2 - n % 2) % 2
    if n % 2 == 0:
        assert not set(shares[0]) & set(shares[1])


def test_random_geo_sampler_is_seeded(scenes):
    windows = []
    for _ in range(2):
        dm = build_scenes(root=str(scenes), chip_size=16, sampler="random", samples_per_epoch=10,
                          seed=5)
        dm.setup()
        windows.append([(w[0].start, w[1].start)
                        for w in dm.train_set.windows + dm.val_set.windows + dm.test_set.windows])
    assert windows[0] == windows[1] and len(windows[0]) == 10


def test_water_dataset_variants(tmp_path):
    scene_dm = build_water(root=str(tmp_path), places=3, size=32, chip_size=16, target="scene")
    scene_dm.setup()
    assert scene_dm.train_set[0]["target"].shape == ()
    ndwi_dm = build_water(root=str(tmp_path), places=3, size=32, target="ndwi")
    ndwi_dm.setup()
    t = ndwi_dm.train_set[0]["target"]
    assert t.dtype == torch.float32 and t.shape == (32, 32)
    assert float(np.nanmax(t.numpy())) <= 1.0 and float(np.nanmin(t.numpy())) >= -1.0


# --------------------------------------------------------------------------- bad input


def test_band_count_different_from_the_config(tmp_path):
    make_chips(tmp_path, chips=1, size=16)
    dm = build_chips(root=str(tmp_path), num_frames=2)
    with pytest.raises(DomainfmError, match=r"chip00_input.tif: has 6 bands but the config expects 12"):
        dm.setup()


def test_all_nodata_chip(tmp_path):
    make_chips(tmp_path, chips=2, size=16)
    write_geotiff(tmp_path / "x_input.tif", np.full((6, 16, 16), -9999, np.float32),
                  crs=CRS_UTM14N, transform=from_origin(0, 0, 30, 30), nodata=-9999)
    write_geotiff(tmp_path / "x_label.tif", np.zeros((16, 16), np.uint8), crs=CRS_UTM14N,
                  transform=from_origin(0, 0, 30, 30))
    with pytest.raises(DomainfmError, match=r"x_input.tif: every pixel is nodata \(-9999"):
        build_chips(root=str(tmp_path)).setup()  # found while checking, before any write
    dm = build_chips(root=str(tmp_path), check_pixels=False, seed=1)
    dm.setup()  # headers only: the chip fails when it is read
    split = next(s for s in ("train", "val", "test") if "x_input.tif" in dm.split_keys(s))
    dataset = dm.sets[split]
    with pytest.raises(DomainfmError, match=r"x_input.tif: every pixel is nodata \(-9999"):
        dataset[[p[0].name for p in dataset.items].index("x_input.tif")]


@pytest.mark.parametrize("size,crs,match", [
    (20, CRS_UTM14N, "label is 20x20 pixels but image x_input.tif is 16x16"),
    (16, rasterio.crs.CRS.from_epsg(32615), "label CRS EPSG:32615 differs from image"),
])
def test_image_and_label_of_different_size_or_crs(tmp_path, size, crs, match):
    write_geotiff(tmp_path / "x_input.tif", np.ones((6, 16, 16), np.float32), crs=CRS_UTM14N,
                  transform=from_origin(0, 0, 30, 30))
    write_geotiff(tmp_path / "x_label.tif", np.zeros((size, size), np.uint8), crs=crs,
                  transform=from_origin(0, 0, 30, 30))
    with pytest.raises(DomainfmError, match=match):
        build_chips(root=str(tmp_path)).setup()


def test_a_file_that_is_not_a_geotiff(tmp_path):
    (tmp_path / "x_input.tif").write_text("not a raster")
    with pytest.raises(DomainfmError, match="x_input.tif: not a readable GeoTIFF"):
        build_chips(root=str(tmp_path)).setup()
    png = tmp_path / "png"
    png.mkdir()
    with rasterio.open(png / "y_input.tif", "w", driver="PNG", width=4, height=4, count=1,
                       dtype="uint8") as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DomainfmError, match="expected a GeoTIFF, got a PNG raster"):
        build_chips(root=str(png)).setup()


def test_missing_dates(tmp_path):
    # a model with temporal encoding and chips without dates
    from domainfm_geospatial.encoder import build_prithvi

    make_chips(tmp_path, chips=3, size=16)
    dm = build_chips(root=str(tmp_path))
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    encoder = build_prithvi("tiny", num_frames=1, temporal_encoding=True)
    with pytest.raises(DomainfmError, match="needs 'temporal_coords'"):
        encoder(batch)
    # a place with fewer dated files than frames
    short = tmp_path / "short"
    make_scenes(short, places=1, size=16, dates=DATES[:2])
    dm = build_scenes(root=str(short), chip_size=16, num_frames=3)
    with pytest.raises(DomainfmError, match="has 2 dates .* but num_frames=3"):
        dm.setup()  # found while checking, before any write
    with pytest.raises(DomainfmError, match="`dates` has 2 entries but num_frames=3"):
        build_chips(root=str(tmp_path), num_frames=3, dates=["2023-01-01", "2023-02-01"])


def test_tiles_split_one_chip_into_disjoint_blocks(tmp_path):
    image = np.random.default_rng(0).uniform(100, 3000, (6, 40, 40)).astype(np.float32)
    image[:, :16, 16:32] = -9999  # the tile at row 0, column 16 holds nodata only
    label = np.tile((np.arange(40) % 2).astype(np.uint8)[:, None], (1, 40))
    grid = dict(crs=CRS_UTM14N, transform=from_origin(500000, 3150000, 30, 30))
    write_geotiff(tmp_path / "a_input.tif", image, nodata=-9999, **grid)
    write_geotiff(tmp_path / "a_label.tif", label, **grid)
    dm = build_chips(root=str(tmp_path), tile_size=16)
    dm.setup()
    keys = {s: dm.split_keys(s) for s in ("train", "val", "test")}
    # 2 x 2 tiles (the 8 px remainder left out), the nodata-only one dropped, one per split
    assert sorted(sum(keys.values(), [])) == ["a_input.tif@0,0", "a_input.tif@16,0",
                                               "a_input.tif@16,16"]
    whole = dm.prep(dm.prep.mask_nodata(image, -9999))[0]
    for split in keys:
        row, col = map(int, keys[split][0].split("@")[1].split(","))
        sample = dm.sets[split][0]
        assert torch.equal(sample["image"], whole[..., row:row + 16, col:col + 16])
        assert torch.equal(sample["target"], torch.from_numpy(label[row:row + 16, col:col + 16]).long())
    unchecked = build_chips(root=str(tmp_path), tile_size=16, check_pixels=False)
    unchecked.setup()  # headers only: every tile is kept
    assert sum(len(unchecked.split_keys(s)) for s in keys) == 4
    with pytest.raises(DomainfmError, match=r"a_input.tif: is 40x40 pixels, smaller than tile_size=48"):
        build_chips(root=str(tmp_path), tile_size=48).setup()
