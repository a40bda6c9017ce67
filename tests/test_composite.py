"""An RGB fluorescence composite (issue 23, class 7): DAPI's blue with a cytoplasm stain was
segmented as whole cells, silently (median area 373 px where the nuclei are 74). An image whose
colours light up different structures is said to be a composite, once, in the log and in
summary.csv's caution, naming the setting that picks the nuclear channel; with it, the nuclei
are the crop's own. The composite is a committed fluorescence crop in blue and, in green, a
stain over the cells its nuclei lie in (its labels grown by 8 px, blurred)."""

import io
import logging
import zipfile

import numpy as np
import pytest
import tifffile
from conftest import CROPS
from lying import DENSE_FLUORESCENCE, HE, crop, matched, nuclei, segment, segmenter
from PIL import Image
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

from nucleoflow.segment import segment_folder
from nucleoflow.shipped import model_path


@pytest.fixture(scope="module")
def seg():
    return segmenter()


def cells(stem, grow=8):
    """A cytoplasm stain (uint8) over the cells around a crop's labelled nuclei."""
    with zipfile.ZipFile(CROPS / "dsb2018_crops.zip") as archive:
        labels = tifffile.imread(io.BytesIO(archive.read(f"labels/{stem}.tif")))
    body = ndi.gaussian_filter((expand_labels(labels, grow) > 0).astype(np.float32) * 90, 1.5)
    return np.clip(body + np.random.default_rng(1).normal(0, 4, body.shape), 0, 255).astype(np.uint8)


def save(path, image):
    Image.fromarray(image).save(path)
    return path


def test_a_composite_of_nuclei_and_cells_is_said_and_its_blue_gives_the_nuclei(seg, tmp_path, caplog):
    nuclear = crop(DENSE_FLUORESCENCE)
    rgb = np.stack([np.zeros_like(nuclear), cells(DENSE_FLUORESCENCE), nuclear], axis=-1)
    path = save(tmp_path / "composite.png", rgb)
    with caplog.at_level(logging.WARNING, logger="nucleoflow.segment"):
        row, labels, table = segment(seg, path, tmp_path / "default")
    note = "an RGB fluorescence composite: its colours light up different structures (channel 2 (blue) lights"
    assert note in row["caution"] and row["caution"].endswith("if channel 2 (blue) holds the nuclear stain (DAPI, Hoechst), set segment.channel: 2")
    assert caplog.text.count(note) == 1
    _, want, want_table = segment(seg, save(tmp_path / "nuclei.png", nuclear), tmp_path / "gray")
    seg_blue = segmenter()
    seg_blue.channel = 2
    blue_row, blue, _ = segment(seg_blue, path, tmp_path / "blue")
    areas = table["area"].median(), want_table["area"].median()
    print(f"composite: {nuclei(labels)} objects, median area {areas[0]}; blue: {nuclei(blue)}; the crop: {nuclei(want)}, {areas[1]}")
    assert areas[0] > 1.5 * areas[1]  # whole cells, as it was
    np.testing.assert_array_equal(blue, want)
    assert "composite" not in blue_row["caution"]


def test_images_of_one_structure_are_not_composites(seg, tmp_path, caplog):
    """Gray saved as RGB, a purple fluorescence image (red and blue alike) and H&E: no caution."""
    nuclear = crop(DENSE_FLUORESCENCE)
    zero = np.zeros_like(nuclear)
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "gray.png", np.stack([nuclear] * 3, -1))
    save(folder / "purple.png", np.stack([nuclear, zero, (nuclear * 0.8).astype(np.uint8)], -1))
    save(folder / "he.png", crop(HE))
    with caplog.at_level(logging.WARNING, logger="nucleoflow.segment"):
        segment_folder(folder, tmp_path / "out", model_path("dsb2018_unet"), outputs=["labels"], tta=False)
    assert "composite" not in caplog.text
    counts = {path.stem: int(tifffile.imread(path).max()) for path in (tmp_path / "out").glob("*.tif")}
    assert counts["gray"] > 40 and matched(tifffile.imread(tmp_path / "out" / "gray.tif"), tifffile.imread(tmp_path / "out" / "purple.tif")) > 40
