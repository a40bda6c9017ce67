"""PNG and JPEG (Pillow; 16-bit RGB(A) PNG through imagecodecs), decoded whole. Registered in
decode.FILE_FORMATS."""

import functools
import io
import logging

import numpy as np
from PIL import JpegImagePlugin, PngImagePlugin

from .errors import InputError
from .region import DPI_IS_NOT_A_PIXEL_SIZE, ImageFormat, RegionSource, check_dims

log = logging.getLogger(__name__)


def _pil_image(data, name, kind):
    """The Pillow image of PNG or JPEG bytes (`kind`, image_format's). The format's own class, not
    Image.open: that checks Pillow's process-wide MAX_IMAGE_PIXELS, which a library must leave
    alone; check_dims applies this module's limits."""
    return (PngImagePlugin.PngImageFile if kind == "PNG" else JpegImagePlugin.JpegImageFile)(io.BytesIO(data))


def _deep_png(data):
    """The colour type (2 RGB, 4 gray + alpha, 6 RGBA) of a 16-bit PNG that Pillow would cut to its
    high byte, or None (its IHDR: bit depth at byte 24, colour type at 25)."""
    if len(data) > 25 and data[12:16] == b"IHDR" and data[24] == 16 and data[25] in (2, 4, 6):
        return data[25]
    return None


def _open_pil(data, name, channel, pixel_size_um, kind):
    deep = _deep_png(data) if kind == "PNG" else None
    with _pil_image(data, name, kind) as img:
        check_dims(
            name,
            img.height,
            img.width,
            4 if img.mode in ("P", "PA") else len(img.getbands()),
            2 if deep or img.mode.startswith("I") or img.mode == "F" else 1,
            whole=True,
            stored_bytes=len(data),
        )
        if getattr(img, "n_frames", 1) > 1:
            raise InputError(name, f"holds {img.n_frames} frames (an animation)", "Save one 2D image per file")
        mode = img.mode
        if deep:  # 16 bits per sample: Pillow reads only the high byte of RGB(A) and gray + alpha
            import imagecodecs

            array = imagecodecs.png_decode(data)
            mode = {2: "RGB", 4: "LA", 6: "RGBA"}[deep]
        else:
            if mode in ("P", "PA"):  # palette indices mean nothing: read the colours they stand for
                img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
            elif mode == "1":
                img = img.convert("L")
            elif mode == "CMYK":
                img = img.convert("RGB")
            elif mode not in ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"):
                raise InputError(name, f"has the unsupported image mode {mode}", "Save it as 8- or 16-bit gray or RGB")
            img.load()
            array = np.asarray(img)
            mode = img.mode
        dpi = img.info.get("dpi")
    bands = {"L": ("YX", False), "I": ("YX", False), "F": ("YX", False), "LA": ("YXC", False), "RGB": ("YXC", True), "RGBA": ("YXC", True)}
    axes, rgb = bands.get(mode, ("YX", False))
    alpha = {"LA": 1, "RGBA": 3}.get(mode)
    if dpi and min(dpi) > 0:  # a PNG's pHYs or a JPEG's density: a scanner's or a screen's, never a microscope's
        log.info("%s: resolution %.0f dpi ignored: %s", name, dpi[0], DPI_IS_NOT_A_PIXEL_SIZE)
    return RegionSource(array, name, axes, channel, rgb=rgb, alpha=alpha, pixel_size_um=pixel_size_um)


def _header_size(data, name, kind):
    with _pil_image(data, name, kind) as img:
        return img.height, img.width


def _format(kind, suffixes, signature):
    return ImageFormat(
        kind,
        suffixes,
        (signature,),
        decode=functools.partial(_open_pil, kind=kind),
        header_size=functools.partial(_header_size, kind=kind),
    )


PNG = _format("PNG", (".png",), b"\x89PNG\r\n\x1a\n")
JPEG = _format("JPEG", (".jpg", ".jpeg"), b"\xff\xd8\xff")
