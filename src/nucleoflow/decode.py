"""Image bytes -> a RegionSource: the formats of image files, told by their first bytes.

Each file format is a module (pil_reader: PNG and JPEG; tiff_reader: TIFF and OME-TIFF;
region.ImageFormat) registered in FILE_FORMATS below; folder formats (OME-Zarr) and opening files
are reader.py's. Preprocess decodes the training archive's members here, from bytes, never
through reader.py: an edit of how files and folders are opened, listed or fingerprinted reruns
what reads users' images, not training.

    source = open_bytes(data, name, channel=None, pixel_size_um=0)   # a RegionSource (reader.py)
    image = decode_image(data, name)                                  # its network channels
"""

import logging
import os

import numpy as np

from . import pil_reader, tiff_reader
from .errors import InputError, UnreadableImage
from .region import ImageFormat, RegionSource

log = logging.getLogger(__name__)

# The formats of image files, a module each (region.ImageFormat): adding one is its module and
# a line here (folder formats: reader.FOLDER_FORMATS).
FILE_FORMATS = {f.name: f for f in (pil_reader.PNG, pil_reader.JPEG, tiff_reader.FORMAT)}


def file_formats():
    """The registered formats of files (told by their first bytes), in order."""
    return list(FILE_FORMATS.values())


def image_suffixes():
    """The suffixes of image files a folder's listing takes: (".png", ".jpg", ...)."""
    return tuple(suffix for f in file_formats() for suffix in f.suffixes)


def readable():
    """The formats read, for messages: "PNG, JPEG or TIFF"."""
    names = [f.name for f in file_formats()]
    return f"{', '.join(names[:-1])} or {names[-1]}"


# Formats not read, named in messages by their files' first bytes.
OTHER_SIGNATURES = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"RIFF", "RIFF (WebP?)"),
    (b"\0\0\0\x0cjP  ", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "zip"),
)


def image_format(head: bytes, name: str) -> ImageFormat:
    """The format (file_formats) of a file from its first bytes (at least 16), whatever its name
    says (a name that says another is logged); anything else is refused, named."""
    found = next((f for f in file_formats() if any(head.startswith(s) for s in f.signatures)), None)
    if found is None:
        other = next((k for signature, k in OTHER_SIGNATURES if head.startswith(signature)), None)
        if other:
            remedy = "Convert it to PNG or TIFF, or remove it from the input"
            raise UnreadableImage(name, f"cannot be decoded as an image: it holds {other} data, not {readable()}", remedy)
        what = "an empty file" if not head else "unrecognised or truncated data"
        raise UnreadableImage(
            name,
            f"cannot be decoded as an image ({what}: not a {readable()} file)",
            "The file is corrupt or truncated: replace it or remove it from the input",
        )
    named = next((f.name for f in file_formats() if os.path.splitext(str(name))[1].lower() in f.suffixes), None)
    if named and named != found.name:
        log.warning("%s: holds %s data though its name says %s; read as %s (the format its bytes begin with)", name, found.name, named, found.name)
    return found



def decode(data, name, channel, pixel_size_um, kind):
    try:
        return kind.decode(data, name, channel, pixel_size_um)
    except InputError:
        raise
    except Exception as exc:
        detail = "unrecognised or truncated data" if isinstance(exc, SyntaxError) else f"{type(exc).__name__}: {exc}"
        remedy = "The file is corrupt or truncated: replace it or remove it from the input"
        raise UnreadableImage(name, f"cannot be decoded as an image ({detail})", remedy) from exc


def open_bytes(data: bytes, name: str, channel: int | str | None = None, pixel_size_um: float = 0) -> RegionSource:
    """A RegionSource, decoded whole, for the bytes of a PNG, JPEG or TIFF file (e.g. a zip
    member), in the format its first bytes say (image_format); `name` is used in messages."""
    return decode(data, name, channel, pixel_size_um, image_format(data[:16], name))



def decode_image(data: bytes, name: str, channel: int | str | None = None) -> np.ndarray:
    """The network channels, (H, W, 1 or 3), of PNG/JPEG/TIFF bytes (open_bytes: the file's own
    metadata, the size limits); `name` is used for the format and in messages."""
    return open_bytes(data, name, channel).read_all()

