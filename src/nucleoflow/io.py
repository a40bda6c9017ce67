"""Reading images and writing outputs atomically (temporary name, then rename)."""

import contextlib
import errno
import io
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import PngImagePlugin

from .errors import InputError, OutputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
# Refuse images whose pixel count suggests a decompression bomb rather than a micrograph
# that this in-memory path can hold (huge slides need the tiled path).
MAX_PIXELS = 40_000 * 40_000
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def setup_logging(log_path, mode="w"):
    """Send log records and uncaught tracebacks of a workflow script to its log file."""
    handler = logging.FileHandler(log_path, mode=mode)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)

    def log_uncaught(kind, value, tb):
        logging.getLogger("nucleoflow").error("failed", exc_info=(kind, value, tb))

    sys.excepthook = log_uncaught


@contextlib.contextmanager
def _output_errors(path):
    """Turn a failed write (full disk, read-only or forbidden folder) into a clear message."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(
            path,
            f"cannot be written ({exc.strerror})",
            "Free disk space, or run the workflow where the results folder is writable",
        ) from exc


def _new_file(folder, prefix, suffix):
    """Create a new empty file of a unique name with mode 0666 less the process umask, as the
    output itself would get (mkstemp's 0600 would leave outputs private to their owner)."""
    while True:
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it into place only on success."""
    path = Path(path)
    with _output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_file(path.parent, f".{path.name}.", ".part")
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


@contextlib.contextmanager
def staging_dir(path):
    """Yield a hidden sibling folder that replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    with _output_errors(path):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
        except OutputError as exc:  # name the output folder, not its hidden staging copy
            raise OutputError(path, exc.problem, exc.remedy) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_tiff(path, array, **kwargs):
    """Write a zlib-compressed TIFF atomically."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression="zlib", **kwargs)


def _refuse_bomb(name, height, width):
    if height * width > MAX_PIXELS:
        raise InputError(
            name,
            f"declares {width}x{height} pixels, over the {MAX_PIXELS} pixel limit (a likely decompression bomb)",
            "Check the file; split huge images into tiles first",
        )


def decode_image(data, name):
    """Decode PNG or TIFF bytes into an array; `name` is used in error messages."""
    try:
        if str(name).lower().endswith((".tif", ".tiff")):
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                shape = tif.series[0].shape
                _refuse_bomb(name, *(shape[:2] if len(shape) < 3 or shape[-1] <= 4 else shape[-2:]))
                array = tif.asarray()
        else:
            # PngImageFile, not Image.open: that checks Pillow's process-wide MAX_IMAGE_PIXELS,
            # which a library must leave alone; _refuse_bomb applies this module's limit.
            with PngImagePlugin.PngImageFile(io.BytesIO(data)) as img:
                _refuse_bomb(name, img.height, img.width)
                img.load()
                array = np.asarray(img)
    except InputError:
        raise
    except Exception as exc:
        detail = "not a PNG file" if isinstance(exc, SyntaxError) else f"{type(exc).__name__}: {exc}"
        raise InputError(
            name,
            f"cannot be decoded as an image ({detail})",
            "The file is corrupt or truncated: replace it or remove it from the input",
        ) from exc
    return array


def read_image(path):
    """Read a PNG or TIFF file from disk."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable") from exc
    return decode_image(data, path)


def load_hwc(path):
    """Read an image file as (H, W, C)."""
    return to_hwc(read_image(path), path)


def plane_layout(shape, name):
    """(height, width, channel_first) of an array holding one 2D gray, RGB or RGBA image (with or
    without alpha, channels last or first); refuses stacks, odd channel counts and tiny images."""
    channel_first = len(shape) == 3 and shape[0] in (3, 4) and shape[-1] not in (3, 4)
    if not (len(shape) == 2 or (len(shape) == 3 and (channel_first or 1 <= shape[-1] <= 4))):
        raise InputError(name, f"has shape {shape}; expected a 2D gray, RGB or RGBA image", "Save one 2D plane per file (split stacks and time series first)")
    height, width = shape[1:] if channel_first else shape[:2]
    if min(height, width) < 8:
        raise InputError(name, f"is only {height}x{width} pixels", "Images must be at least 8x8 pixels")
    return height, width, channel_first


def channels_last(array, channel_first, name):
    """A decoded image or region of one (plane_layout told the layout) as (H, W, C), C in {1, 3}:
    gray, RGB, or RGBA minus alpha."""
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "uif":
        raise InputError(name, f"has unsupported pixel type {array.dtype}", "Save it as 8- or 16-bit gray or RGB")
    if array.ndim == 2:
        array = array[..., None]
    elif channel_first:
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] == 2:  # gray + alpha
        array = array[..., :1]
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.shape[-1] == 3 and np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]):
        array = array[..., :1]
    return np.ascontiguousarray(array)


def to_hwc(array, name):
    """A whole decoded image as (H, W, C) with C in {1, 3}, checked (plane_layout)."""
    return channels_last(array, plane_layout(array.shape, name)[2], name)
