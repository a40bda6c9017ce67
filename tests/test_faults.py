"""Decompression bombs and unwritable outputs: clear errors, nothing partial left behind."""

import errno
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from nucleoflow import dataset
from nucleoflow.dataset import build_dataset
from nucleoflow.decode import decode_image
from nucleoflow.errors import InputError, OutputError


def png_header_only(width, height):
    """A tiny PNG that declares a huge image (the shape of a decompression bomb)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tile_bomb(path, side, tile=256):
    """A small tiled TIFF declaring side x side 8-bit pixels whose tiles all point at one
    zlib-compressed tile of zeros (about 8 bytes of file per tile: 1.2 MB for 100000 px)."""
    data = zlib.compress(bytes(tile * tile), 9)
    n = (-(-side // tile)) ** 2
    header = 8
    offsets_at = header + len(data)
    counts_at = offsets_at + 4 * n
    ifd_at = counts_at + 4 * n
    entries = [
        (256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1), (277, 3, 1, 1),
        (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, n, offsets_at), (325, 4, n, counts_at),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    body = b"II*\0" + struct.pack("<I", ifd_at) + data
    body += struct.pack(f"<{n}I", *([header] * n)) + struct.pack(f"<{n}I", *([len(data)] * n)) + ifd
    Path(path).write_bytes(body)
    return Path(path)


def kaggle_zip(path, n=3, size=32):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            image, mask = io.BytesIO(), io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(image, "PNG")
            square = np.zeros((size, size), np.uint8)
            square[4:12, 4:12] = 255
            Image.fromarray(square).save(mask, "PNG")
            zf.writestr(f"img{i}/images/img{i}.png", image.getvalue())
            zf.writestr(f"img{i}/masks/m0.png", mask.getvalue())
    return path


@pytest.mark.parametrize("side", [50_000, 70_000])
def test_png_bomb_is_refused(side):
    with pytest.raises(InputError, match="decompression bomb") as err:
        decode_image(png_header_only(side, side), "bomb.png")
    assert "bomb.png" in str(err.value)


def test_tiff_bomb_is_refused():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((64, 64), np.uint8))
    data = bytearray(buffer.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:  # patch the declared size to 60000x60000
        tags = tif.pages[0].tags
        for name in ("ImageWidth", "ImageLength"):
            fmt = "<I" if tags[name].dtype == 4 else "<H"
            struct.pack_into(fmt, data, tags[name].valueoffset, 60_000)
    with pytest.raises(InputError, match="decompression bomb") as err:
        decode_image(bytes(data), "bomb.tif")
    assert "bomb.tif" in str(err.value)


def test_zip_member_inflating_past_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_MEMBER_BYTES", 1 << 20)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/images/a.png", b"\0" * (4 << 20))  # 4 MiB of zeros in a few KiB
        zf.writestr("a/masks/m.png", b"\0")
    assert archive.stat().st_size < 50_000
    with pytest.raises(InputError, match="decompression bomb") as err:
        build_dataset(archive, tmp_path / "out")
    assert "a/images/a.png" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_unwritable_output_gives_clear_error_and_no_partial_folder(tmp_path, monkeypatch, code):
    """Simulate a disk that fills up (or turns read-only) after the first image is written."""
    written = []
    real_imwrite = tifffile.imwrite

    def failing_imwrite(path, *args, **kwargs):
        if written:
            raise OSError(code, os.strerror(code), str(path))
        written.append(path)
        return real_imwrite(path, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", failing_imwrite)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as err:
        build_dataset(kaggle_zip(tmp_path / "d.zip"), out)
    assert "Free disk space" in str(err.value)
    assert written and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
