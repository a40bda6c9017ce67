"""Every image the pipeline reads goes through here or decode.py: one path from a file (or bytes,
or an array) to a RegionSource that knows its channels, its pixel size and its limits. (The
prepared data that preprocess decoded and wrote are read back as written: prepared.py.) Each
format is a module (tiff_reader, pil_reader, zarr_reader: region.ImageFormat): file formats are
registered in decode.FILE_FORMATS (which decodes bytes), folder formats in FOLDER_FORMATS below;
RegionSource is region.py's.

    source = open_image(path, channel=None, pixel_size_um=0)   # PNG, JPEG, TIFF, OME-TIFF, OME-Zarr
    source = decode.open_bytes(data, name)                     # the same, from bytes (zip members)
    source = RegionSource(array, name)                         # a bare array: (H, W), (H, W, C)
    with source:
        source.height, source.width
        source.channel_names        # every channel: OME/Zarr names, else "0", "1", ...
        source.nuclear              # indices of the channels the network sees (1, or 3 for RGB)
        source.pixel_size           # (y, x) in micrometres, or None (pixel units)
        source.pixel_size_um        # one size (sqrt of y * x: areas are exact), or None
        source.pixel_size_source    # where it came from: given, ome, imagej, tiff or none
        source.read(y0, y1, x0, x1)           # (h, w, 1 or 3) network input, non-finite or transparent -> background
        source.read_channels(y0, y1, x0, x1)  # (h, w, C) every channel, raw values (NaN kept)
    image = read_image(path)            # short forms: the whole image's network channels,
    image = decode.decode_image(data, name)   # (H, W, 1 or 3), of a file, bytes or a bare array
    image = to_hwc(array, name)

The format comes from the file's first bytes (its signature), never from its name: PNG data
named .tif is read as PNG, with a warning that the name says otherwise. The layout comes from
the file's own metadata, never from a guess on the array's shape: OME-XML and ImageJ axes, TIFF
photometric/extra samples (JPEG-compressed YCbCr is read as the RGB it decodes to; CMYK is never
taken for RGB), the PNG header (a palette image is read through its palette; 16-bit RGB(A) at
its full depth, through imagecodecs: Pillow keeps only the high byte), NGFF axes. Z or T axes
are refused; planes whose meaning no metadata gives (a bare (3, H, W) stack, a planar "RGB" TIFF
written from one) are refused unless `channel` says how to read them; a file of several image
series is refused rather than cut to the first.

An alpha channel is not a colour: it says which pixels are sample. Pixels of alpha 0 are left
out of the image's statistics (appearance.sample_mask) and read as its background; so are the
pixels of an area of one exact black or saturated colour set apart from every other pixel
(padding, a blanked label, a saturated speck: appearance.py).

A pixel size is taken only from metadata that means one: OME (PhysicalSizeX/Y, NGFF scale),
ImageJ's calibration, or TIFF resolution tags in cm, mm or um giving 0.01-100 um. Dots per inch
(the TIFF default unit, a PNG's pHYs, a JPEG's density) are a scanner's or screen's (72, 300,
600 dpi: 353, 85, 42 um), never a microscope's: ignored, logged. pixel_size_source says which.

`channel` picks the nuclear channel(s) for the network: an index, a channel name (e.g. "DAPI"),
or "rgb" (three channels as an RGB colour image). Default: the only channel of a 1-channel
image, the colours of an RGB image; any other image must say.

Limits, checked on the declared sizes before anything is allocated, on every reader (in-memory
and lazy): MAX_SIDE pixels a side (memory of the lazy, band-wise path grows with the width),
MAX_CHANNELS channels, MAX_CHUNK_BYTES per stored tile or strip (a lazy read decodes whole
chunks), MAX_DECODED_BYTES for images decoded whole (PNG, JPEG, TIFF bytes), and for images over
RATIO_CHECK_PIXELS a ratio of declared bytes to file bytes of at most MAX_RATIO (deflate cannot
exceed ~1032:1) and no two tiles stored at the same offset (a tile-reuse bomb). Larger real
images go through the lazy path: TIFFs memory-mapped or read chunk by chunk, Zarr by chunk.
"""

import os
from pathlib import Path

import numpy as np

from . import zarr_reader
from .decode import decode, image_format, image_suffixes
from .errors import InputError, UnreadableImage
from .region import ImageFormat, RegionSource

# The formats of image folders, a module each (region.ImageFormat): adding one is its module and
# a line here (file formats: decode.FILE_FORMATS).
FOLDER_FORMATS = {f.name: f for f in (zarr_reader.FORMAT,)}


def folder_formats():
    """The registered formats of folders (OME-Zarr)."""
    return list(FOLDER_FORMATS.values())


def folder_format(path) -> ImageFormat | None:
    """The folder format (folder_formats) a folder is an image of, or None."""
    path = Path(path)
    return next((f for f in folder_formats() if path.is_dir() and f.is_folder(path)), None)


def is_image_folder(path) -> bool:
    """Whether a folder is one image (of a registered folder format: OME-Zarr)."""
    return folder_format(path) is not None


# ---------------------------------------------------------------- entry points


def _head(path):
    try:
        with open(path, "rb") as file:
            return file.read(16)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable (a broken link?)") from exc


def open_image(path: str | os.PathLike, channel: int | str | None = None, pixel_size_um: float = 0) -> RegionSource:
    """A RegionSource for an image file or an image folder (OME-Zarr), in the format its first
    bytes say (image_format); read lazily where the format allows (TIFF memory-mapped or chunk by
    chunk, Zarr chunk by chunk), else decoded whole (PNG/JPEG, within MAX_DECODED_BYTES)."""
    path = Path(path)
    name = str(path)
    folder = folder_format(path)
    if folder:
        return folder.open_file(path, name, channel, pixel_size_um, None)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable (a broken link?)") from exc
    kind = image_format(_head(path), name)
    if kind.open_file:
        return kind.open_file(path, name, channel, pixel_size_um, size)
    return decode(_read_bytes(path), name, channel, pixel_size_um, kind)


def _read_bytes(path):
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable") from exc


def image_size(path: str | os.PathLike, channel: int | str | None = None, pixel_size_um: float = 0) -> tuple[int, int]:
    """(height, width) of an image file or folder, as open_image gives them, from the header
    alone where the format allows (PNG, JPEG); the others open lazily anyway."""
    path = Path(path)
    if not folder_format(path):
        kind = image_format(_head(path), str(path))
        if kind.header_size:
            data = _read_bytes(path)
            return kind.header_size(data, str(path))
    with open_image(path, channel, pixel_size_um) as source:
        return source.height, source.width



# ---------------------------------------------------------------- short forms: the whole image



def read_image(path: str | os.PathLike, channel: int | str | None = None) -> np.ndarray:
    """The network channels, (H, W, 1 or 3), of an image file (open_image)."""
    with open_image(path, channel) as source:
        return source.read_all()


def to_hwc(array, name, channel=None):
    """A bare array, (H, W) or (H, W, C), as the network's (H, W, 1 or 3) (RegionSource: 3
    channels are RGB; other counts need `channel`)."""
    return RegionSource(array, name, channel=channel).read_all()


def image_entries(folder: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(images, skipped) of a folder: image files and image folders that open_image reads,
    sorted by name, and [(path, reason)] for every other visible entry (never silently)."""
    images, skipped = [], []
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith("."):
            continue
        if folder_format(path):
            images.append(path)
        elif path.is_dir():
            skipped.append((path, "a folder (subfolders are not searched)"))
        elif not path.exists():
            skipped.append((path, "a broken link (its target does not exist)"))
        elif path.suffix.lower() in image_suffixes():
            images.append(path)
        else:
            every = [*image_suffixes(), *(suffix for f in folder_formats() for suffix in f.suffixes)]
            skipped.append((path, f"not an image this tool reads ({', '.join(every)})"))
    return images, skipped


def file_fingerprint(path):
    """What identifies a file's content cheaply: size, mtime (ns) and inode; for a Zarr folder,
    those of every file in it."""
    path = Path(path)
    if path.is_dir():
        return [[str(p.relative_to(path)), *file_fingerprint(p)] for p in sorted(path.rglob("*")) if p.is_file()]
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]
