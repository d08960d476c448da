from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from domainfm.errors import DomainfmError
from domainfm_geospatial.data import Preprocess
from domainfm_geospatial.encoder import build_prithvi
from domainfm_geospatial.heads import build_segmentation
from domainfm_geospatial.io import write_geotiff
from domainfm_geospatial.predict import CLASS_NODATA, build_predictor, predict_scene, tile_origins
from domainfm_geospatial.synthetic import CRS_UTM14N, NODATA, example_stack

TRANSFORM = from_origin(440_000, 3_160_000, 30, 30)


def _scene(path, h=100, w=90, bands=6):
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 5000, (bands, h, w)).astype(np.float32)
    data[:, :5, :7] = NODATA
    return write_geotiff(path, data, crs=CRS_UTM14N, transform=TRANSFORM, nodata=NODATA)


def _local_model():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 3, 1)
    return lambda x: conv(x[:, :, 0])  # per-pixel: the output cannot depend on the tiling


def test_tile_origins_cover_the_scene_flush_to_the_end():
    assert tile_origins(100, 32, 24) == [0, 24, 48, 68]
    assert tile_origins(20, 32, 24) == [0]
    assert tile_origins(64, 32, 32) == [0, 32]


@pytest.mark.parametrize("kind", ["classes", "probabilities"])
def test_tiled_equals_untiled_and_keeps_the_grid(tmp_path, kind):
    source = _scene(tmp_path / "scene.tif")
    prep = Preprocess.create(file_bands=None, bands=None, mean=None, std=None, frames=1)
    fn = _local_model()
    out = predict_scene(source, tmp_path / "pred.tif", fn, prep, tile=32, overlap=8, channels=3,
                        kind=kind, progress=False)
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.width, dst.height) == \
               (src.crs, src.transform, src.width, src.height)
        raw = src.read().astype(np.float32)
        got = dst.read()
    raw[raw == NODATA] = np.nan
    image, valid = prep(raw)
    with torch.no_grad():
        probs = fn(image[None])[0].softmax(0).numpy()
    valid = valid.numpy()
    if kind == "classes":
        assert np.array_equal(got[0][valid], probs.argmax(0)[valid])
        assert np.all(got[0][~valid] == CLASS_NODATA)  # nodata in, nodata out
    else:
        np.testing.assert_allclose(got[:, valid], probs[:, valid], atol=1e-5)


def test_bad_scene_inputs(tmp_path):
    source = _scene(tmp_path / "scene.tif", bands=4)
    prep = Preprocess.create(file_bands=None, bands=None, mean=None, std=None, frames=1)
    with pytest.raises(DomainfmError, match="scene.tif: has 4 bands but the config expects 6"):
        predict_scene(source, tmp_path / "p.tif", _local_model(), prep, tile=32, overlap=8,
                      channels=3, progress=False)
    with pytest.raises(DomainfmError, match="overlap must be in"):
        predict_scene(source, tmp_path / "p.tif", _local_model(), prep, tile=32, overlap=32,
                      channels=3, progress=False)
    (tmp_path / "text.tif").write_text("hello")
    with pytest.raises(DomainfmError, match="text.tif: not a readable GeoTIFF"):
        predict_scene(tmp_path / "text.tif", tmp_path / "p.tif", _local_model(), prep, tile=32,
                      overlap=8, channels=3, progress=False)


def _model(**encoder_kwargs):
    """A model whose data specification is that of the embedded water data (3 frames)."""
    encoder = build_prithvi("tiny", **encoder_kwargs).eval()
    head = build_segmentation(encoder, num_classes=2, ignore_index=-1).eval()
    prep = Preprocess.create(file_bands=None, bands=None, mean=None, std=None, frames=3,
                             nodata=NODATA)
    data = prep.spec(num_classes=2, ignore_index=-1)
    return SimpleNamespace(encoder=encoder, head=head, spec=SimpleNamespace(data=data))


def test_predictor_writes_classes_on_the_input_grid(tmp_path):
    source = example_stack(tmp_path / "stack.tif", size=80)
    written = build_predictor(progress=False)(_model(), source, tmp_path / "out")
    assert [p.name for p in written] == ["stack_pred.tif"]
    with rasterio.open(source) as src, rasterio.open(written[0]) as dst:
        assert (dst.crs, dst.transform, dst.shape, dst.count) == (src.crs, src.transform, src.shape, 1)
        assert set(np.unique(dst.read(1))) <= {0, 1}


def test_predictor_needs_dates_for_temporal_models(tmp_path):
    source = example_stack(tmp_path / "stack.tif", size=32)
    model = _model(temporal_encoding=True)
    with pytest.raises(DomainfmError, match="temporal encoding: give the predictor `dates`"):
        build_predictor(progress=False)(model, source, tmp_path / "out")
    dates = ["2023-04-15", "2023-07-15", "2023-10-15"]
    written = build_predictor(progress=False, dates=dates)(model, source, tmp_path / "out")
    assert written[0].is_file()


def test_quicklook_png_beside_the_prediction(tmp_path):
    source = example_stack(tmp_path / "stack.tif", size=48)
    written = build_predictor(progress=False, quicklook=True)(_model(), source, tmp_path / "out")
    assert [p.name for p in written] == ["stack_pred.tif", "stack_pred.png"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_with_one_broken_scene_writes_nothing(tmp_path):
    from domainfm_geospatial.data.broken import truncate

    inputs = tmp_path / "in"
    inputs.mkdir()
    example_stack(inputs / "a.tif", size=48)
    truncate(example_stack(inputs / "b.tif", size=48))
    with pytest.raises(DomainfmError, match="b.tif: not a readable GeoTIFF"):
        build_predictor(progress=False)(_model(), inputs, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a.tif was fine, but every input is checked first
