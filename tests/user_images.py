"""A gray, an RGB and a multichannel image as users bring them, each with its pixel size in its
own metadata, made from the committed real crops (.test/data), and what `segment` writes for
each, every output: the inputs of the consumer tests (test_consumers.py, test_napari.py; the
fixtures `segmented_image` and `segment_user_image` in conftest.py)."""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from nucleoflow.decode import decode_image

GRAY = "ae9f76b5360df3f6"  # fluorescence, 256 px, 73 nuclei (crops.csv)
RGB = "65c8527c16a01619"  # histology, 176 px, 41 nuclei
KINDS = ("gray", "rgb", "multichannel")


@dataclass(frozen=True)
class UserImage:
    path: Path
    pixels: np.ndarray  # (H, W, C) as stored in the file
    channel_names: list  # as the file names them ("0", "1", ... where it does not)
    pixel_size_um: float
    pixel_size_source: str  # summary.csv's pixel_size_source for it
    channel: str | None  # the segment.channel it needs
    nuclear: list  # the channels the network sees, those the overlay shows


@dataclass(frozen=True)
class Segmented:
    """An image segmented with every output, its labels as the labels TIFF holds them."""

    image: UserImage
    stem: str
    out: Path
    summary: dict  # Segmenter.to_files' row
    labels: np.ndarray

    def output(self, name):
        """The file of one of outputs.OUTPUTS."""
        from nucleoflow.outputs import output_name

        return self.out / output_name(self.stem, name)


def non_decreasing_map(values, shown):
    """Whether `shown` is a non-decreasing function of `values` (equal values shown alike)."""
    order = np.lexsort((shown, values))
    values, shown = values[order], shown[order].astype(int)
    same = values[1:] == values[:-1]
    return bool((np.diff(shown) >= 0).all() and (shown[1:][same] == shown[:-1][same]).all())


def crop_pixels(crops_zip, stem):
    """(H, W, C) uint8 pixels of a committed crop."""
    with zipfile.ZipFile(crops_zip) as archive:
        return decode_image(archive.read(f"images/{stem}.png"), f"{stem}.png")


def write_user_image(kind, folder, crops_zip):
    """One of KINDS as a TIFF in folder: gray with ImageJ's calibration (Fiji's Image >
    Properties), RGB with resolution tags in pixels per cm, multichannel an OME-TIFF whose
    nuclear channel, DAPI (the gray crop), comes after a GFP channel derived from it (its
    nuclei blurred into a diffuse signal), so segmenting it needs the channel named."""
    if kind == "gray":
        pixels = crop_pixels(crops_zip, GRAY)
        path = folder / "gray.tif"
        tifffile.imwrite(path, pixels[..., 0], imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "um"})
        return UserImage(path, pixels, ["0"], 0.5, "imagej", None, [0])
    if kind == "rgb":
        pixels = crop_pixels(crops_zip, RGB)
        path = folder / "rgb.tif"
        tifffile.imwrite(path, pixels, photometric="rgb", resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit=tifffile.RESUNIT.CENTIMETER)
        return UserImage(path, pixels, ["0", "1", "2"], 0.25, "tiff", None, [0, 1, 2])
    if kind == "multichannel":
        dapi = crop_pixels(crops_zip, GRAY)[..., 0]
        planes = np.stack([ndi.gaussian_filter(dapi, 4), dapi])
        path = folder / "multichannel.ome.tif"
        size = {"PhysicalSizeX": 0.65, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.65, "PhysicalSizeYUnit": "µm"}
        tifffile.imwrite(path, planes, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["GFP", "DAPI"]}, **size})
        return UserImage(path, np.moveaxis(planes, 0, -1), ["GFP", "DAPI"], 0.65, "ome", "DAPI", [1])
    raise ValueError(kind)


def segment_user_image(kind, folder, crops_zip):
    """write_user_image's image segmented by the shipped model with every output into folder/out,
    its pixel size and channel names read from the file (no TTA: the outputs, not the
    network, are under test)."""
    from nucleoflow.outputs import OUTPUTS
    from nucleoflow.segment import Segmenter, output_stem

    image = write_user_image(kind, folder, crops_zip)
    with Segmenter("dsb2018_unet", channel=image.channel, tta=False) as segmenter:
        summary = segmenter.to_files(image.path, folder / "out", OUTPUTS)
    stem = output_stem(image.path)
    return Segmented(image, stem, folder / "out", summary, tifffile.imread(folder / "out" / f"{stem}.tif"))
