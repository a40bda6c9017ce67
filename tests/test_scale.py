import io
import zipfile

import numpy as np
import pytest
import tifffile
from PIL import Image

from nucleoflow.metrics import image_scores
from nucleoflow.scale import labels_to_shape, median_diameter, rescale_factor, size_distribution, zoom
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path

SIZES = {"p5": 9.9, "p10": 11.0, "median": 18.4, "p90": 47.0, "p95": 49.3, "images": 418}


def test_rescale_factor_only_outside_the_known_sizes():
    assert rescale_factor(18.0, SIZES) == 1.0
    assert rescale_factor(8.0, SIZES) == rescale_factor(60.0, SIZES) == 1.0  # within the margin around p5-p95
    assert rescale_factor(6.0, SIZES) == pytest.approx(18.4 / 6.0)
    assert rescale_factor(92.0, SIZES) == pytest.approx(0.2)
    assert rescale_factor(20.0, SIZES, given=True) == pytest.approx(0.92)  # the user's scale wins
    assert rescale_factor(None, SIZES) == rescale_factor(6.0, None) == 1.0


def test_size_distribution_and_mapping_back():
    labels = np.zeros((64, 64), np.uint32)
    labels[10:20, 10:20], labels[30:50, 30:50] = 1, 2
    assert median_diameter(labels) == pytest.approx(np.median(np.sqrt(4 * np.array([100, 400]) / np.pi)))
    assert size_distribution([labels, labels])["median"] == round(median_diameter(labels), 1)
    back = labels_to_shape(zoom(labels[..., None], 0.5)[..., 0], labels.shape)
    assert back.shape == labels.shape and back.max() == 2
    assert image_scores(labels, back)["dsb"] == 1.0


def crop(archive, stem):
    image = np.asarray(Image.open(io.BytesIO(archive.read(f"images/{stem}.png"))))
    return image, tifffile.imread(io.BytesIO(archive.read(f"labels/{stem}.tif")))


def test_small_nuclei_are_labelled_at_the_models_scale(crops_zip):
    """A crop shrunk 3x (nuclei ~6 px across) merges and misses nuclei at its own scale; with
    the training sizes the segmenter zooms it back and finds them."""
    with zipfile.ZipFile(crops_zip) as archive:
        image, truth = crop(archive, "29dd28df98ee51b4")  # 56 fluorescence nuclei
    small = zoom(image[..., None] if image.ndim == 2 else image, 1 / 3)
    small_truth = labels_to_shape(truth, small.shape[:2])
    plain = Segmenter(model_path("dsb2018_unet"))
    plain.sizes = None
    aware = Segmenter(model_path("dsb2018_unet"))
    aware.sizes = SIZES
    given = Segmenter(model_path("dsb2018_unet"), diameter=6.0)
    given.sizes = SIZES
    scores = {name: image_scores(small_truth, seg(small))["dsb"] for name, seg in [("plain", plain), ("aware", aware), ("given", given)]}
    assert scores["aware"] > scores["plain"] + 0.1, scores
    assert scores["given"] > scores["plain"] + 0.1, scores


def test_image_files_get_the_same_zoom_and_measurements(crops_zip, tmp_path, caplog):
    """segment's file path (to_files) zooms a small-nucleus image as the array path does, and
    measures the labels mapped back to the original pixels."""
    import pandas as pd

    with zipfile.ZipFile(crops_zip) as archive:
        image, _ = crop(archive, "29dd28df98ee51b4")
    small = zoom(image[..., None], 1 / 3)[..., 0]
    Image.fromarray(small).save(tmp_path / "small.png")
    segmenter = Segmenter(model_path("dsb2018_unet"))
    segmenter.sizes = SIZES
    expected = segmenter(small)
    with caplog.at_level("INFO", logger="nucleoflow.segment"):
        row = segmenter.to_files(tmp_path / "small.png", tmp_path / "out", ["labels", "measurements"])
    assert "zoom" in caplog.text
    labels = tifffile.imread(tmp_path / "out" / "small.tif")
    assert labels.shape == small.shape and np.array_equal(labels, expected)
    table = pd.read_csv(tmp_path / "out" / "small.csv")
    assert row["nuclei"] == len(table) == labels.max() > 20
    assert (table["area"].to_numpy() == np.bincount(labels.ravel())[1:]).all()
