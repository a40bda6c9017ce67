"""Inputs that lie (issue 23), class 7 (part): a file is read in the format its first bytes say,
whatever its name says (PNG data named .tif was "corrupt" while JPEG data named .png was read);
a JPEG-compressed RGB TIFF (stored as YCbCr) is read as the RGB it decodes to; a CMYK TIFF is
never taken for RGB. Each case is a committed real crop written in the lying form."""

import io
import logging

import numpy as np
import pytest
import tifffile
from lying import HE, crop, matched, nuclei, segment, segmenter
from PIL import Image

from nucleoflow.decode import open_bytes
from nucleoflow.errors import InputError
from nucleoflow.formats import write_label_ome_tiff
from nucleoflow.reader import open_image
from nucleoflow.segment import segment_folder
from nucleoflow.shipped import model_path


@pytest.fixture(scope="module")
def seg():
    return segmenter()


def encoded(fmt):
    """The H&E crop's bytes as a PNG, TIFF or JPEG (quality 95) file."""
    buffer = io.BytesIO()
    if fmt == "TIFF":
        tifffile.imwrite(buffer, crop(HE), photometric="rgb")
    else:
        Image.fromarray(crop(HE)).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


SUFFIX = {"PNG": ".png", "TIFF": ".tif", "JPEG": ".jpg"}


@pytest.mark.parametrize("held, named", [("PNG", "TIFF"), ("JPEG", "PNG"), ("TIFF", "PNG"), ("PNG", "JPEG")])
def test_format_comes_from_the_bytes_not_the_name(tmp_path, seg, caplog, held, named):
    """The same bytes under a lying suffix give the nuclei of the honest file, with a warning."""
    data = encoded(held)
    honest = tmp_path / f"honest{SUFFIX[held]}"
    honest.write_bytes(data)
    lying = tmp_path / f"lying{SUFFIX[named]}"
    lying.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="nucleoflow.reader"):
        with open_image(lying) as source:
            pixels = source.read_all()
    assert f"{lying}: holds {held} data though its name says {named}; read as {held}" in caplog.text
    with open_image(honest) as source:
        np.testing.assert_array_equal(pixels, source.read_all())
    np.testing.assert_array_equal(open_bytes(data, f"mine.zip:images/x{SUFFIX[named]}").read_all(), pixels)  # a zip member too
    _, want, _ = segment(seg, honest, tmp_path / "honest_out", ["labels"])
    _, labels, _ = segment(seg, lying, tmp_path / "lying_out", ["labels"])
    assert nuclei(want) > 10
    np.testing.assert_array_equal(labels, want)


@pytest.mark.parametrize("fmt, needle", [("GIF", "holds GIF data"), ("WEBP", "holds RIFF (WebP?) data")])
def test_other_formats_under_an_image_name_are_named(tmp_path, fmt, needle):
    buffer = io.BytesIO()
    Image.fromarray(crop(HE)).save(buffer, format=fmt)
    (tmp_path / "tissue.png").write_bytes(buffer.getvalue())
    with pytest.raises(InputError) as err:
        open_image(tmp_path / "tissue.png")
    assert str(err.value).startswith(f"{tmp_path / 'tissue.png'}: cannot be decoded as an image: it {needle}, not PNG, JPEG or TIFF")
    assert "Convert it to PNG or TIFF" in str(err.value)


# The JPEG TIFF's nuclei against the lossless crop's: JPEG (quality 95) changes pixels by ~1-2
# levels, enough to move a nucleus at a threshold; the reader itself adds nothing (the labels of
# its decoded pixels saved as PNG are identical).
JPEG_TOLERANCE = 2


@pytest.mark.parametrize("tile", [None, (128, 128)])
def test_jpeg_compressed_rgb_tiff_is_read_as_rgb(tmp_path, seg, tile):
    path = tmp_path / "jpeg.tif"
    tifffile.imwrite(path, crop(HE), photometric="rgb", compression="jpeg", compressionargs={"level": 95}, tile=tile)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.YCBCR  # what tifffile (and most writers) store
        decoded = tif.asarray()
    with open_image(path) as source:
        assert source.rgb and source.nuclear == (0, 1, 2)
        pixels = source.read_all()
    np.testing.assert_array_equal(pixels, decoded)
    np.testing.assert_array_equal(open_bytes(path.read_bytes(), "mine.zip:images/jpeg.tif").read_all(), decoded)
    assert np.abs(pixels.astype(int) - crop(HE)).mean() < 3  # RGB, not YCbCr
    Image.fromarray(decoded).save(tmp_path / "decoded.png")
    row, labels, _ = segment(seg, path, tmp_path / "out", ["labels"])
    _, same, _ = segment(seg, tmp_path / "decoded.png", tmp_path / "decoded", ["labels"])
    np.testing.assert_array_equal(labels, same)
    assert row["modality"] == "histology"
    Image.fromarray(crop(HE)).save(tmp_path / "lossless.png")
    _, want, _ = segment(seg, tmp_path / "lossless.png", tmp_path / "lossless", ["labels"])
    print(f"JPEG TIFF: {nuclei(labels)} nuclei, lossless {nuclei(want)}, matched {matched(want, labels)}")
    assert matched(want, labels) >= nuclei(want) - JPEG_TOLERANCE and abs(nuclei(labels) - nuclei(want)) <= JPEG_TOLERANCE


def test_cmyk_tiff_is_never_taken_for_rgb(tmp_path):
    cmyk = np.concatenate([255 - crop(HE), np.zeros(crop(HE).shape[:2] + (1,), np.uint8)], axis=-1)
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "print.tif"
    tifffile.imwrite(path, cmyk, photometric="separated")
    with pytest.raises(InputError) as err:
        open_image(path, channel="rgb")
    message = str(err.value)
    assert message.startswith(f"{path}: is a CMYK image (printing inks: cyan, magenta, yellow, black), not the red, green and blue")
    assert "Convert it to RGB first" in message
    with pytest.raises(InputError, match=r"has 4 channels \(0: cyan, 1: magenta, 2: yellow, 3: black\) and is not an RGB colour image"):
        open_image(path)
    with open_image(path, channel="magenta") as source:  # one ink, as a channel, is still fine
        np.testing.assert_array_equal(source.read_all()[..., 0], 255 - crop(HE)[..., 1])
    out = tmp_path / "out"
    with pytest.raises(InputError, match="is a CMYK image"):
        segment_folder(folder, out, model_path("dsb2018_unet"), channel="rgb")
    assert not out.exists()


def test_a_pyramidal_tiff_is_read_at_full_resolution(tmp_path, seg):
    """A tiled TIFF with its sub-resolutions in SubIFDs (a slide scanner's, or nucleoflow's own
    labels over 1024 px) was refused as "corrupt or truncated: replace it" (its series opened as a
    zarr group of levels); its full resolution is read, and segments as the flat file does."""
    tissue = np.concatenate([np.concatenate([crop(HE), crop(HE)[:, ::-1]], axis=1)] * 2)  # 352 px
    tiff = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(tiff, ome=True) as writer:
        options = dict(tile=(128, 128), compression="zlib", photometric="rgb")
        writer.write(tissue, subifds=2, **options)
        writer.write(tissue[::2, ::2], subfiletype=1, **options)
        writer.write(tissue[::4, ::4], subfiletype=1, **options)
    with open_image(tiff) as source:
        np.testing.assert_array_equal(source.read_all(), tissue)
    Image.fromarray(tissue).save(tmp_path / "flat.png")
    _, labels, _ = segment(seg, tiff, tmp_path / "out", ["labels"])
    _, want, _ = segment(seg, tmp_path / "flat.png", tmp_path / "flat", ["labels"])
    assert nuclei(want) > 60
    np.testing.assert_array_equal(labels, want)
    # nucleoflow's own labels over 1024 px have sub-resolutions: they open as an image too.
    big = np.kron(labels, np.ones((3, 3), labels.dtype))  # 1056 px
    write_label_ome_tiff(tmp_path / "labels.tif", [(0, big)], big.shape)
    with tifffile.TiffFile(tmp_path / "labels.tif") as tif:
        assert len(tif.series[0].levels) > 1
    with open_image(tmp_path / "labels.tif") as source:
        np.testing.assert_array_equal(source.read_channels(0, 1056, 0, 1056)[..., 0], big)
