"""The one reader path (reader.py): channel layouts from the file's own metadata, channel choice,
pixel size, OME-TIFF and OME-Zarr, and size limits checked before anything is allocated."""

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from nucleoflow.decode import open_bytes
from nucleoflow.errors import InputError
from nucleoflow.reader import open_image
from nucleoflow.region import RegionSource

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 255, (64, 80), dtype=np.uint8)
TWO = RNG.integers(0, 4000, (2, 64, 80), dtype=np.uint16)  # (C, Y, X): DAPI, GFP


def expect(path_or_call, *needles, **kwargs):
    """open_image (or the call) fails with an InputError holding every needle; returns the message."""
    with pytest.raises(InputError) as err:
        path_or_call() if callable(path_or_call) else open_image(path_or_call, **kwargs)
    message = str(err.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def ome_tiff(path, data=TWO, axes="CYX", names=("DAPI", "GFP"), size=0.65, **kwargs):
    metadata = {"axes": axes, "Channel": {"Name": list(names)}} if names else {"axes": axes}
    if size:
        metadata.update(PhysicalSizeX=size, PhysicalSizeY=size, PhysicalSizeXUnit="µm", PhysicalSizeYUnit="µm")
    tifffile.imwrite(path, data, ome=True, metadata=metadata, **kwargs)
    return path


def ome_zarr(path, data, axes="cyx", scale=(1, 0.5, 0.5), names=None, version=2, unit="micrometer"):
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=version)
    array = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1,) * (data.ndim - 2) + (32, 32))
    array[:] = data
    multiscales = [
        {
            "version": "0.4" if version == 2 else "0.5",
            "axes": [{"name": a, "type": "channel" if a == "c" else "space", **({"unit": unit} if a in "yx" else {})} for a in axes],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}],
        }
    ]
    omero = {"channels": [{"label": n} for n in names]} if names else None
    if version == 2:
        group.attrs["multiscales"] = multiscales
        if omero:
            group.attrs["omero"] = omero
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales, **({"omero": omero} if omero else {})}
    return path


# ---------------------------------------------------------------- layouts from metadata


@pytest.mark.parametrize("tiled", [False, True])
def test_ome_tiff_channels_names_and_pixel_size(tmp_path, tiled):
    path = ome_tiff(tmp_path / "two.ome.tif", **({"tile": (32, 32), "compression": "zlib"} if tiled else {}))
    with open_image(path, channel="DAPI") as source:
        assert (source.height, source.width, source.channels) == (64, 80, 2)
        assert source.channel_names == ("DAPI", "GFP")
        assert source.nuclear == (0,) and source.pixel_size == pytest.approx((0.65, 0.65))
        np.testing.assert_array_equal(source.read_channels(5, 40, 7, 70), np.moveaxis(TWO[:, 5:40, 7:70], 0, -1))
        np.testing.assert_array_equal(source.read(5, 40, 7, 70)[..., 0], TWO[0, 5:40, 7:70])
    assert open_image(path, channel=1).nuclear == (1,)
    assert open_image(path, channel="gfp").nuclear == (1,)  # names match case-insensitively
    assert open_image(path, channel="GFP", pixel_size_um=0.3).pixel_size == (0.3, 0.3)


def test_two_channels_without_a_choice_are_refused(tmp_path):
    path = ome_tiff(tmp_path / "two.ome.tif")
    expect(path, f"{path}: has 2 channels (0: DAPI, 1: GFP)", "segment.channel")


@pytest.mark.parametrize(
    "channel, needle", [("DAPII", "has no channel named 'DAPII'"), (2, "has no channel 2: it has 2"), (-1, "has no channel -1"), ("rgb", "not the 3")]
)
def test_bad_channel_names_the_file_and_the_choices(tmp_path, channel, needle):
    path = ome_tiff(tmp_path / "two.ome.tif")
    message = expect(path, str(path), needle, "0: DAPI, 1: GFP", channel=channel)
    assert "segment.channel" in message


@pytest.mark.parametrize("value", [-0.5, 1e6, float("nan")])
def test_bad_pixel_size_is_refused(tmp_path, value):
    path = ome_tiff(tmp_path / "two.ome.tif")
    expect(path, str(path), "segment.pixel_size_um", channel=0, pixel_size_um=value)


def test_absurd_pixel_size_in_metadata_is_refused(tmp_path):
    path = ome_tiff(tmp_path / "huge_pixels.ome.tif", size=5000)
    expect(path, str(path), "its metadata gives a pixel size of 5000", "segment.pixel_size_um", channel=0)


def test_h_w_2_is_two_channels_never_alpha(tmp_path):
    data = np.stack([GRAY, 255 - GRAY], axis=-1)
    tifffile.imwrite(tmp_path / "hw2.tif", data)
    expect(tmp_path / "hw2.tif", "has 2 channels", "segment.channel")
    with open_image(tmp_path / "hw2.tif", channel=1) as source:
        assert source.channels == 2
        np.testing.assert_array_equal(source.read_all()[..., 0], 255 - GRAY)
    assert RegionSource(data, "array", channel=1).read_all()[..., 0].tolist() == (255 - GRAY).tolist()


@pytest.mark.parametrize("how", ["tifffile_default", "minisblack_pages", "pil_pages"])
def test_three_planes_without_metadata_are_refused_unless_chosen(tmp_path, how):
    stack = np.stack([GRAY, GRAY // 2, GRAY // 3])
    path = tmp_path / "planes.tif"
    if how == "tifffile_default":
        with pytest.warns(DeprecationWarning):
            tifffile.imwrite(path, stack)  # stored as planar "RGB"
    elif how == "minisblack_pages":
        tifffile.imwrite(path, stack, photometric="minisblack", metadata=None)
    else:
        frames = [Image.fromarray(p) for p in stack]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    message = expect(path, str(path), "holds 3 planes", "no metadata says whether they are channels, Z slices or time points", "segment.channel")
    assert "maximum projection" in message
    with open_image(path, channel=2) as source:
        np.testing.assert_array_equal(source.read_all()[..., 0], GRAY // 3)
    assert open_image(path, channel="rgb").nuclear == (0, 1, 2)


def test_interleaved_rgb_is_colour(tmp_path):
    rgb = np.stack([GRAY, GRAY // 2, 255 - GRAY], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)
    with open_image(tmp_path / "rgb.tif") as source:
        assert source.rgb and source.nuclear == (0, 1, 2)
        np.testing.assert_array_equal(source.read_all(), rgb)
    assert open_image(tmp_path / "rgb.tif", channel=2).read_all()[..., 0].tolist() == (255 - GRAY).tolist()


@pytest.mark.parametrize("axes, what", [("ZYX", "is a Z-stack of 3 planes"), ("TYX", "is a time series of 3 planes")])
def test_z_and_t_from_metadata_are_refused(tmp_path, axes, what):
    stack = np.stack([GRAY] * 3)
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, metadata={"axes": axes})
    ome_tiff(tmp_path / "ome.tif", stack, axes=axes, names=None)
    for name in ("ij.tif", "ome.tif"):
        message = expect(tmp_path / name, str(tmp_path / name), what, "maximum projection", channel=0)
        assert "from its metadata" in message


def test_multi_series_tiff_is_refused_not_cut(tmp_path):
    with tifffile.TiffWriter(tmp_path / "series.tif") as tif:
        tif.write(GRAY)
        tif.write(GRAY[:32, :32])
    expect(tmp_path / "series.tif", "holds 2 image series", "silently drop", "file of its own")


def test_palette_png_is_read_through_its_palette(tmp_path):
    image = Image.fromarray((GRAY > 128).astype(np.uint8), mode="L").convert("P")
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.save(tmp_path / "palette.png")
    with open_image(tmp_path / "palette.png") as source:
        assert source.rgb
        pixels = source.read_all()
    assert pixels.shape == (64, 80, 3)
    np.testing.assert_array_equal(pixels[GRAY > 128][0], [10, 200, 30])


def test_gray_alpha_png_drops_its_alpha(tmp_path):
    Image.fromarray(np.stack([GRAY, np.full_like(GRAY, 255)], axis=-1), mode="LA").save(tmp_path / "la.png")
    with open_image(tmp_path / "la.png") as source:
        assert source.channels == 1
        np.testing.assert_array_equal(source.read_all()[..., 0], GRAY)


def test_jpeg_is_read(tmp_path):
    Image.fromarray(GRAY).save(tmp_path / "a.jpg", quality=100)
    with open_image(tmp_path / "a.jpg") as source:
        assert source.read_all().shape == (64, 80, 1)


def test_tiff_resolution_gives_the_pixel_size(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", GRAY, resolution=(5000, 5000), resolutionunit="CENTIMETER")
    assert open_image(tmp_path / "cm.tif").pixel_size == pytest.approx((2.0, 2.0))
    tifffile.imwrite(tmp_path / "ij.tif", GRAY, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "um"})
    assert open_image(tmp_path / "ij.tif").pixel_size == pytest.approx((0.25, 0.25))
    tifffile.imwrite(tmp_path / "dpi.tif", GRAY, resolution=(72, 72), resolutionunit="INCH")
    assert open_image(tmp_path / "dpi.tif").pixel_size is None  # a display default, not a microscope's
    tifffile.imwrite(tmp_path / "none.tif", GRAY)
    assert open_image(tmp_path / "none.tif").pixel_size is None


# ---------------------------------------------------------------- OME-Zarr


@pytest.mark.parametrize("version", [2, 3])
def test_ome_zarr_multiscale_image(tmp_path, version):
    path = ome_zarr(tmp_path / "two.ome.zarr", TWO, names=["DAPI", "GFP"], version=version)
    with open_image(path, channel="DAPI") as source:
        assert source.channel_names == ("DAPI", "GFP") and source.pixel_size == pytest.approx((0.5, 0.5))
        np.testing.assert_array_equal(source.read_channels(3, 50, 4, 70), np.moveaxis(TWO[:, 3:50, 4:70], 0, -1))


def test_ome_zarr_z_stack_is_refused(tmp_path):
    path = ome_zarr(tmp_path / "z.zarr", np.stack([GRAY] * 3), axes="zyx")
    expect(path, str(path), "is a Z-stack of 3 planes")


def test_zarr_without_multiscales_is_refused(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    group.create_array("0", shape=(64, 64), dtype=np.uint8)
    expect(tmp_path / "plain.zarr", str(tmp_path / "plain.zarr"), "holds no multiscale image", "OME-Zarr image folder")


# ---------------------------------------------------------------- limits before allocation


def test_tiled_bomb_is_refused_from_its_tags(tmp_path):
    """A tiled TIFF declaring 100000x100000 pixels: refused from the tags, nothing decoded."""
    from test_faults import tile_bomb

    path = tile_bomb(tmp_path / "bomb.tif", 100_000)
    assert path.stat().st_size < 2_000_000
    expect(path, str(path), "declares 100000x100000 pixels", "decompression bomb")
    expect(lambda: open_bytes(path.read_bytes(), "bomb.tif"), "bomb.tif", "declares 100000x100000 pixels")


def test_tile_reuse_bomb_within_the_side_limit_is_refused(tmp_path):
    from test_faults import tile_bomb

    path = tile_bomb(tmp_path / "reuse.tif", 20_000)
    expect(path, str(path), "chunks share 1 stored ones", "decompression bomb")


def test_png_declared_size_is_checked_before_decoding():
    from test_faults import png_header_only

    expect(lambda: open_bytes(png_header_only(45_000, 100), "wide.png"), "wide.png", "declares 45000x100 pixels")


def test_zarr_declared_size_is_checked(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "big.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(100_000, 100_000), dtype=np.uint8, chunks=(1024, 1024))  # no chunk written
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}]
    expect(tmp_path / "big.zarr", "declares 100000x100000 pixels")


def test_bytes_and_file_read_alike(tmp_path):
    path = ome_tiff(tmp_path / "two.ome.tif")
    with open_image(path, channel="GFP") as from_file:
        np.testing.assert_array_equal(open_bytes(path.read_bytes(), path.name, "GFP").read_all(), from_file.read_all())
    buffer = io.BytesIO()
    Image.fromarray(GRAY).save(buffer, format="PNG")
    np.testing.assert_array_equal(open_bytes(buffer.getvalue(), "g.png").read_all()[..., 0], GRAY)


def test_a_new_format_is_its_module_and_a_registration(tmp_path, monkeypatch, crops_zip):
    """A format this version does not read (NumPy's .npy), added as a new reader module would add
    it: an ImageFormat (signature, suffix, decoder) and its entry in decode.FILE_FORMATS. Folder
    listings, open_image and segment_folder then read it, and label it as the same pixels in PNG."""
    import zipfile

    from nucleoflow.decode import FILE_FORMATS
    from nucleoflow.reader import image_entries, read_image
    from nucleoflow.region import ImageFormat
    from nucleoflow.segment import segment_folder

    def decode(data, name, channel, pixel_size_um):
        return RegionSource(np.load(io.BytesIO(data), allow_pickle=False), name, channel=channel, pixel_size_um=pixel_size_um)

    monkeypatch.setitem(FILE_FORMATS, "NPY", ImageFormat("NPY", (".npy",), (b"\x93NUMPY",), decode))
    with zipfile.ZipFile(crops_zip) as archive:
        png = archive.read(sorted(n for n in archive.namelist() if n.startswith("images/"))[0])
    folders = {suffix: tmp_path / suffix for suffix in ("png", "npy")}
    for folder in folders.values():
        folder.mkdir()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))  # a bare array's 3 channels are RGB
    Image.fromarray(pixels).save(folders["png"] / "cells.png")
    np.save(folders["npy"] / "cells.npy", pixels)
    assert image_entries(folders["npy"]) == ([folders["npy"] / "cells.npy"], [])
    with open_image(folders["npy"] / "cells.npy") as source:
        assert np.array_equal(source.read_all(), read_image(folders["png"] / "cells.png"))
    for suffix, folder in folders.items():
        segment_folder(folder, tmp_path / f"{suffix}_out", "dsb2018_unet", tta=False)
    labels = [tifffile.imread(tmp_path / f"{suffix}_out" / "cells.tif") for suffix in folders]
    assert labels[0].max() > 5 and np.array_equal(labels[0], labels[1])
