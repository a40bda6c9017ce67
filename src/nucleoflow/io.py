"""Writing outputs atomically (temporary name, then rename), logging, and the short forms of
reading (every read goes through reader.py: open_image / open_bytes / RegionSource)."""

import contextlib
import errno
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

import tifffile

from .errors import OutputError
from .reader import IMAGE_SUFFIXES, MAX_PIXELS, RegionSource, open_bytes, open_image  # noqa: F401 (the reading API, re-exported)

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


def decode_image(data, name, channel=None):
    """The network channels, (H, W, 1 or 3), of PNG/JPEG/TIFF bytes (reader.open_bytes: the
    file's own metadata, the size limits); `name` is used for the format and in messages."""
    return open_bytes(data, name, channel).read_all()


def read_image(path, channel=None):
    """The network channels, (H, W, 1 or 3), of an image file (reader.open_image)."""
    with open_image(path, channel) as source:
        return source.read_all()


load_hwc = read_image


def to_hwc(array, name, channel=None):
    """A bare array, (H, W) or (H, W, C), as the network's (H, W, 1 or 3) (reader.RegionSource:
    3 channels are RGB; other counts need `channel`)."""
    return RegionSource(array, name, channel=channel).read_all()
