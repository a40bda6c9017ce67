"""Inputs that lie (issue 23), class 4: bit depth and units. A 16-bit RGB(A) PNG is read at its
full depth (Pillow keeps the high byte: 8-bit values stored in 16 bits read black, 12-bit data
as 16 grey levels, intensities in the measurements cut by 257); a pixel size is taken only from
metadata that means one (dots per inch are a scanner's or a screen's: 300 dpi is not 84.7 um
pixels), and summary.csv says where each came from (pixel_size_source)."""

import io

import imagecodecs
import numpy as np
import pandas as pd
import pytest
import tifffile
from lying import FLUORESCENCE, HE, crop, matched, nuclei, segment, segmenter
from PIL import Image

from nucleoflow.decode import decode_image, open_bytes
from nucleoflow.reader import open_image
from nucleoflow.segment import segment_folder
from nucleoflow.shipped import model_path


@pytest.fixture(scope="module")
def seg():
    return segmenter()


@pytest.fixture(scope="module")
def honest(seg, tmp_path_factory):
    """(labels, measurements) of the honest 8-bit H&E crop."""
    folder = tmp_path_factory.mktemp("honest")
    Image.fromarray(crop(HE)).save(folder / "he.png")
    _, labels, table = segment(seg, folder / "he.png", folder / "out")
    return labels, table


# (name, how 8-bit values v are stored in 16 bits, the factor they are scaled by)
DEPTHS = [
    ("8-bit values in 16 bits", 1),  # Pillow read the high byte: all 0, no nuclei
    ("12-bit", 16),  # 0-4080: Pillow read 16 grey levels
    ("16-bit", 257),  # 0-65535: Pillow read the 8-bit values, and the measurements were 1/257 of the file's
]


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("depth, factor", DEPTHS)
def test_16_bit_rgb_png_is_read_at_full_depth(tmp_path, seg, honest, depth, factor, alpha):
    deep = crop(HE).astype(np.uint16) * factor
    if alpha:
        deep = np.concatenate([deep, np.full(deep.shape[:2] + (1,), 65535, np.uint16)], axis=-1)
    path = tmp_path / "deep.png"
    path.write_bytes(imagecodecs.png_encode(deep))
    with open_image(path) as source:
        assert source.dtype == np.uint16 and source.rgb and source.channels == 3
        np.testing.assert_array_equal(source.read_all(), deep[..., :3])
    row, labels, table = segment(seg, path, tmp_path / "out")
    want, want_table = honest
    assert row["modality"] == "histology"
    if factor in (1, 16):
        # The same values times a power of two: percentile normalisation gives the network the
        # very same floats, so the labels are identical.
        np.testing.assert_array_equal(labels, want)
    else:
        # x257 is not exact in float32: a pixel at a threshold may flip; the nuclei are the same.
        assert matched(want, labels) >= nuclei(want) - 1 and abs(nuclei(labels) - nuclei(want)) <= 1
    pairs = identical(want, labels)
    assert len(pairs) >= nuclei(want) - 1 > 10
    mine, theirs = table.set_index("label").loc[list(pairs.values())], want_table.set_index("label").loc[list(pairs)]
    for c in range(3):  # the file's own intensities, not the high byte's
        np.testing.assert_allclose(mine[f"mean_intensity_{c}"].to_numpy(), factor * theirs[f"mean_intensity_{c}"].to_numpy(), rtol=1e-9)


def identical(a, b):
    """{label in a: label in b} of the nuclei whose pixels are the same in both label images."""
    pairs = {}
    for n in np.unique(a)[1:]:
        mask = a == n
        m = np.bincount(b[mask]).argmax()
        if m and np.array_equal(b == m, mask):
            pairs[int(n)] = int(m)
    return pairs


def test_16_bit_rgb_png_in_training_data_is_read_at_full_depth():
    deep = crop(HE).astype(np.uint16) * 16
    image = decode_image(imagecodecs.png_encode(deep), "mine.zip:images/he.png")
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, deep)


def pixel_size_files(folder):
    """{file name: (pixel size in um or None, pixel_size_source)} of the same fluorescence crop
    written with each kind of resolution metadata."""
    image = crop(FLUORESCENCE)
    folder.mkdir()
    Image.fromarray(image).save(folder / "scan300.png", dpi=(300, 300))
    Image.fromarray(image).save(folder / "screen600.jpg", dpi=(600, 600), quality=95)
    tifffile.imwrite(folder / "tiff300.tif", image, resolution=(300, 300), resolutionunit="INCH")
    tifffile.imwrite(folder / "tiff600.tif", image, resolution=(600, 600), resolutionunit="INCH")
    tifffile.imwrite(folder / "ij_inch.tif", image, imagej=True, resolution=(300, 300), metadata={"unit": "inch"})
    tifffile.imwrite(folder / "absurd_cm.tif", image, resolution=(1, 1), resolutionunit="CENTIMETER")  # 10 mm pixels
    tifffile.imwrite(folder / "cm.tif", image, resolution=(20000, 20000), resolutionunit="CENTIMETER")
    tifffile.imwrite(folder / "um.tif", image, resolution=(4, 4), resolutionunit="MICROMETER")
    tifffile.imwrite(folder / "ij.tif", image, imagej=True, resolution=(1 / 0.325, 1 / 0.325), metadata={"unit": "um"})
    size = {"PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
    tifffile.imwrite(folder / "ome.ome.tif", image, ome=True, metadata={"axes": "YX", **size})
    return {
        "scan300.png": (None, "none"),
        "screen600.jpg": (None, "none"),
        "tiff300.tif": (None, "none"),
        "tiff600.tif": (None, "none"),
        "ij_inch.tif": (None, "none"),
        "absurd_cm.tif": (None, "none"),
        "cm.tif": (0.5, "tiff"),
        "um.tif": (0.25, "tiff"),
        "ij.tif": (0.325, "imagej"),
        "ome.ome.tif": (0.65, "ome"),
    }


def test_pixel_size_only_from_metadata_that_means_one(tmp_path):
    for name, (size, source_kind) in pixel_size_files(tmp_path / "in").items():
        with open_image(tmp_path / "in" / name) as source:
            assert source.pixel_size_source == source_kind, name
            assert source.pixel_size_um == (pytest.approx(size) if size else None), name
        with open_image(tmp_path / "in" / name, pixel_size_um=0.3) as source:
            assert source.pixel_size_um == 0.3 and source.pixel_size_source == "given", name


def test_summary_records_where_each_pixel_size_came_from(tmp_path):
    expected = pixel_size_files(tmp_path / "in")
    segment_folder(tmp_path / "in", tmp_path / "out", model_path("dsb2018_unet"), tta=False)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("image")
    for name, (size, source_kind) in expected.items():
        assert summary.loc[name, "pixel_size_source"] == source_kind, name
        if size:
            assert summary.loc[name, "pixel_size_um"] == pytest.approx(size), name
        else:
            assert np.isnan(summary.loc[name, "pixel_size_um"]), name
    lossless = [name for name in expected if not name.endswith(".jpg")]
    assert (summary.loc[lossless, "nuclei"] == summary.loc["cm.tif", "nuclei"]).all()  # the same pixels in every file
    assert "area_um2" not in pd.read_csv(tmp_path / "out" / "scan300.csv").columns  # 84.7 um pixels: no
    table = pd.read_csv(tmp_path / "out" / "cm.csv")
    np.testing.assert_allclose(table["area_um2"], table["area"] * 0.25)
    segment_folder(tmp_path / "in", tmp_path / "given", model_path("dsb2018_unet"), tta=False, pixel_size_um=0.3)
    summary = pd.read_csv(tmp_path / "given" / "summary.csv")
    assert (summary["pixel_size_source"] == "given").all() and (summary["pixel_size_um"] == 0.3).all()


def test_png_resolution_is_logged_not_taken(tmp_path, caplog):
    buffer = io.BytesIO()
    Image.fromarray(crop(FLUORESCENCE)).save(buffer, format="PNG", dpi=(300, 300))
    with caplog.at_level("INFO", logger="nucleoflow.pil_reader"):
        source = open_bytes(buffer.getvalue(), "scan.png")
    assert source.pixel_size is None and source.pixel_size_source == "none"
    assert "scan.png: resolution 300 dpi ignored" in caplog.text
