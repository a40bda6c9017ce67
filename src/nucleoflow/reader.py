"""Every image the pipeline reads goes through here: one path from a file (or bytes, or an array)
to a RegionSource that knows its channels, its pixel size and its limits. (The prepared data
that preprocess decoded through here and wrote are read back as written: prepared.py.)

    source = open_image(path, channel=None, pixel_size_um=0)   # PNG, JPEG, TIFF, OME-TIFF, OME-Zarr
    source = open_bytes(data, name)                            # the same, from bytes (zip members)
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
    image = decode_image(data, name)    # (H, W, 1 or 3), of a file, bytes or a bare array
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

import io
import logging
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import tifffile
from PIL import JpegImagePlugin, PngImagePlugin

from .appearance import appearance, fill_mask
from .errors import InputError, UnreadableImage, counted, setting, setting_value

log = logging.getLogger(__name__)

MAX_SIDE = 40_000
MAX_PIXELS = MAX_SIDE * MAX_SIDE
MAX_CHANNELS = 256
MAX_CHUNK_BYTES = 1 << 30
MAX_DECODED_BYTES = 1 << 32
MAX_RATIO = 1000
RATIO_CHECK_PIXELS = 1 << 26
MIN_SIDE = 8
# 1 nm .. 100 um: outside it, a pixel size is a mistake. options.RANGES["pixel_size_um"] too (a
# test compares them): not imported from there, so that editing the options reruns no preprocess.
PIXEL_SIZE_RANGE_UM = (1e-3, 100.0)
# TIFF resolution tags are written by any software, with any value: a pixel size only in this range.
PLAUSIBLE_TIFF_PIXEL_UM = (0.01, 100.0)
# TIFF compressions whose YCbCr tifffile decodes to RGB (OJPEG, JPEG, ALT_JPEG, JPEG_LOSSY).
JPEG_COMPRESSIONS = (6, 7, 33007, 34892)
# The formats read, by their files' first bytes; the others' signatures name them in messages.
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"), (b"II+\0", "TIFF"), (b"MM\0+", "TIFF"))
OTHER_SIGNATURES = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"RIFF", "RIFF (WebP?)"),
    (b"\0\0\0\x0cjP  ", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "zip"),
)
DPI_IS_NOT_A_PIXEL_SIZE = "dots per inch are a scanner's or a screen's, not a microscope's pixel size (pixel units; set segment.pixel_size_um to give one)"
NAMED_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}

PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
IMAGE_SUFFIXES = PIL_SUFFIXES + TIFF_SUFFIXES


def channel_remedy():
    """What to do about an image whose nuclear channel is not known (setting: errors.setting)."""
    return f"Set {setting('segment.channel')} to the nuclear channel: its index, its name, or rgb for an RGB colour image"


STACK_REMEDY = "Segment one 2D plane per file: save one plane or a maximum projection (Fiji: Image > Stacks > Z Project)"
BOMB_REMEDY = f"Check the file; images over {MAX_SIDE} px a side must be split into tiles first"
_UNITS_UM = {
    "m": 1e6, "meter": 1e6, "cm": 1e4, "centimeter": 1e4, "mm": 1e3, "millimeter": 1e3,
    "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "pm": 1e-6, "picometer": 1e-6, "å": 1e-4, "angstrom": 1e-4, "in": 25400.0, "inch": 25400.0,
}  # fmt: skip


def unit_to_um(unit):
    """Micrometres per `unit` (OME, NGFF and ImageJ spellings), or None if unknown."""
    if unit is None:
        return 1.0
    return _UNITS_UM.get(str(unit).strip().lower().replace("\\u00b5", "µ"))


def check_pixel_size(value, name, where):
    """A pixel size in um, refused with the file named when negative, zero or absurd."""
    low, high = PIXEL_SIZE_RANGE_UM
    if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
        raise InputError(
            name,
            f"{where} gives a pixel size of {value} um, outside {low}-{high} um",
            f"Set {setting('segment.pixel_size_um')} to the true pixel size in micrometres (it overrides the file's metadata)",
        )
    return float(value)


def check_dims(name, height, width, channels=1, itemsize=1, whole=False, stored_bytes=None):
    """Refuse declared sizes over the limits (module docstring), before anything is allocated."""
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise InputError(name, f"declares {width}x{height} pixels, over the limit of {MAX_SIDE} a side (a likely decompression bomb)", BOMB_REMEDY)
    if channels > MAX_CHANNELS:
        raise InputError(name, f"declares {channels} channels, over the limit of {MAX_CHANNELS}", "Save the channels you need in a file of their own")
    declared = height * width * channels * itemsize
    if whole and declared > MAX_DECODED_BYTES:
        raise InputError(
            name,
            f"declares {declared} bytes of pixels, over the {MAX_DECODED_BYTES} bytes this format is decoded into",
            "Save it as a tiled TIFF, which is read tile by tile",
        )
    if stored_bytes is not None and height * width > RATIO_CHECK_PIXELS and declared > MAX_RATIO * max(stored_bytes, 1):
        raise InputError(
            name,
            f"declares {width}x{height} pixels ({declared} bytes) in {stored_bytes} bytes of file, a ratio over {MAX_RATIO}:1 (a likely decompression bomb)",
            BOMB_REMEDY,
        )
    if min(height, width) < MIN_SIDE:
        raise InputError(name, f"is only {height}x{width} pixels", f"Images must be at least {MIN_SIDE}x{MIN_SIDE} pixels")


def guess_axes(shape):
    """Axes of a bare array, only where its shape leaves no doubt: (H, W) gray, (H, W, C) channels
    last; P marks leading planes of unknown meaning (channels? Z? time?)."""
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3 and shape[-1] <= 16 and shape[-1] <= min(shape[:2]):
        return "YXC"
    if len(shape) == 3 and shape[0] <= 16 and shape[0] < min(shape[1:]):
        return "PYX"
    return None


class RegionSource:
    """One 2D image (any number of channels) in memory or lazy, read region by region.

    array: anything sliceable (numpy, memmap, zarr) whose dimensions `axes` names: Y, X, C
    (channels), S (samples, i.e. channels), Z, T, P (planes of unknown meaning), or others of
    size 1. Without axes, a bare array's are guessed only where unambiguous (guess_axes).
    channel_names, rgb, alpha (index of an alpha channel: not a channel, it marks the pixels
    that are sample) and pixel_size ((y, x) um, from the metadata pixel_size_source names: ome,
    imagej or tiff) come from the file's metadata; pixel_size_um > 0 overrides pixel_size.
    """

    def __init__(
        self,
        array,
        name,
        axes=None,
        channel=None,
        channel_names=None,
        rgb=None,
        alpha=None,
        pixel_size=None,
        pixel_size_um=0,
        keep=None,
        pixel_size_source=None,
    ):
        self.array, self.name, self._keep = array, str(name), keep
        shape = tuple(int(n) for n in array.shape)
        given_axes = axes
        axes = (axes or guess_axes(shape) or "").upper()
        axes = axes.replace("S", "C") if "C" not in axes else axes
        if len(axes) != len(shape):
            raise InputError(
                name, f"has shape {shape}; expected one 2D gray, RGB or multichannel image", "Save one 2D plane per file (split stacks and time series first)"
            )
        sizes = dict(zip(axes, shape))
        for axis, what in (("Z", "a Z-stack"), ("T", "a time series")):
            if sizes.get(axis, 1) > 1:
                raise InputError(name, f"is {what} of {sizes[axis]} planes (axes {axes} of shape {shape}, from its metadata)", STACK_REMEDY)
        if sizes.get("P", 1) > 1:
            if channel is None:
                raise InputError(
                    name,
                    f"holds {sizes['P']} planes of shape {shape}, and no metadata says whether they are channels, Z slices or time points",
                    f"If they are channels, set {setting('segment.channel')} to the nuclear one (an index 0-{sizes['P'] - 1}, or rgb for an RGB colour image); "
                    "if Z slices or time points, segment one 2D plane per file (save one plane or a maximum projection: Fiji, Image > Stacks > Z Project)",
                )
            axes = axes.replace("P", "C")
            sizes = dict(zip(axes, shape))
        extra = [a for a in axes if a not in "YXC" and sizes[a] > 1]
        if extra or axes.count("C") > 1 or "Y" not in axes or "X" not in axes:
            raise InputError(
                name,
                f"has shape {shape} (axes {axes}); expected one 2D gray, RGB or multichannel image",
                "Save one 2D plane per file (split stacks and time series first)",
            )
        self.axes = axes
        self.height, self.width = sizes["Y"], sizes["X"]
        stored = sizes.get("C", 1)
        self._alpha = alpha if alpha is not None and 0 <= alpha < stored else None
        self._keep_channels = [c for c in range(stored) if c != self._alpha]
        self.channels = len(self._keep_channels)
        check_dims(name, self.height, self.width, self.channels)
        names = list(channel_names or [])
        if len(names) != stored or len(set(names)) != len(names) or not all(names):
            names = [str(i) for i in range(stored)]
        self.channel_names = tuple(names[c] for c in self._keep_channels)
        self.rgb = bool(rgb) if rgb is not None else (given_axes is None and self.channels == 3 and axes == "YXC")
        self.nuclear = self.select(channel)
        self.dtype = np.dtype(array.dtype)
        if self.dtype.kind not in "uifb":
            raise InputError(name, f"has unsupported pixel type {self.dtype}", "Save it as 8- or 16-bit integer or float gray or RGB")
        if pixel_size_um:
            value = check_pixel_size(pixel_size_um, name, setting("segment.pixel_size_um"))
            self.pixel_size, self.pixel_size_source = (value, value), "given"
        elif pixel_size is not None:
            self.pixel_size = tuple(check_pixel_size(v, name, "its metadata") for v in pixel_size)
            self.pixel_size_source = pixel_size_source or "metadata"
        else:
            self.pixel_size, self.pixel_size_source = None, "none"
        # One size for areas (um2 = px * pixel_size_um**2): exact for square pixels.
        self.pixel_size_um = math.sqrt(self.pixel_size[0] * self.pixel_size[1]) if self.pixel_size else None
        if self.pixel_size and not math.isclose(*self.pixel_size, rel_tol=1e-3):
            log.warning("%s: pixels are %g x %g um (not square); areas use %g um", name, self.pixel_size[1], self.pixel_size[0], self.pixel_size_um)
        # Region indexing: Y and X sliced, C whole, every other (size-1) axis at 0.
        self._order = [axis for axis in axes if axis in "YXC"]
        self._nonfinite_warned = False

    def select(self, channel):
        """Indices of the nuclear channel(s) that `channel` (None, index, name or "rgb") picks."""
        n, key = self.channels, setting("segment.channel")
        named = any(name != str(i) for i, name in enumerate(self.channel_names))
        listing = ", ".join(f"{i}: {name}" for i, name in enumerate(self.channel_names)) if named else "unnamed"
        listing = listing if n <= 32 else f"{listing[:200]}..."
        indices = "0" if n == 1 else "0 or 1" if n == 2 else f"an index from 0 to {n - 1}"
        only_one = f"Leave {key} unset: the image's one channel is used"
        if isinstance(channel, str) and channel.strip().lstrip("-").isdigit():
            channel = int(channel)
        if channel is None or channel == "":
            if n == 1:
                return (0,)
            if self.rgb and n == 3:
                return (0, 1, 2)
            raise InputError(self.name, f"has {counted(n, 'channel')} ({listing}) and is not an RGB colour image", channel_remedy())
        if isinstance(channel, bool) or not isinstance(channel, int | str):
            raise InputError(self.name, f"cannot take {key} {channel!r}", channel_remedy())
        if isinstance(channel, int):
            if not 0 <= channel < n:
                remedy = f"Set {key} to {indices}, its only channel, or leave it unset" if n == 1 else f"Set {key} to {indices}"
                raise InputError(
                    self.name,
                    f"has no channel {channel}: it has {counted(n, 'channel')}" + (f" ({listing})" if named else ""),
                    remedy + (", or a channel name" if named else ""),
                )
            return (channel,)
        if channel.lower() == "rgb":
            if n not in (3, 4):
                rgb = setting_value("segment.channel", "rgb")
                remedy = only_one if n == 1 else f"Set {key} to the index{' or name' if named else ''} of the nuclear channel"
                raise InputError(
                    self.name,
                    f"has {counted(n, 'channel')}{f' ({listing})' if named else ''}, not the 3 of an RGB (or 4 of an RGBA) image ({rgb})",
                    remedy,
                )
            return (0, 1, 2)
        matches = [i for i, n in enumerate(self.channel_names) if n == channel] or [i for i, n in enumerate(self.channel_names) if n.lower() == channel.lower()]
        if len(matches) != 1:
            if named:
                problem, remedy = f"its channels are {listing}", f"Set {key} to one of these names or indices"
            elif n == 1:
                problem, remedy = "its one channel has no name in its metadata", only_one
            else:
                problem, remedy = f"its {n} channels have no names in its metadata", f"Set {key} to an index: {indices}"
            raise InputError(self.name, f"has no channel named {channel!r}: {problem}", remedy)
        return (matches[0],)

    def _stored(self, y0, y1, x0, x1):
        """Every stored channel of a region, alpha included, as (h, w, C), raw values."""
        index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else slice(None) if a == "C" else 0 for a in self.axes)
        try:
            region = np.asarray(self.array[index])
        except InputError:
            raise
        except Exception as exc:
            raise UnreadableImage(
                self.name,
                f"cannot be decoded at rows {y0}-{y1}, columns {x0}-{x1} ({type(exc).__name__}: {exc})",
                "The file is corrupt or truncated: replace it or remove it from the input",
            ) from exc
        if "C" not in self._order:
            region = region[..., None]
        else:
            region = np.moveaxis(region, self._order.index("C"), -1)
            if self._order.index("Y") > self._order.index("X"):
                region = region.swapaxes(0, 1)
        if region.dtype == bool:
            region = region.astype(np.uint8)
        return region

    def read_channels(self, y0, y1, x0, x1, channels=None):
        """Every channel (or the given ones) of a region as (h, w, C), raw values (NaN kept)."""
        region = self._stored(y0, y1, x0, x1)
        keep = [self._keep_channels[c] for c in channels] if channels is not None else self._keep_channels
        if keep != list(range(region.shape[-1])):
            region = region[..., keep]
        return region

    def _network(self, y0, y1, x0, x1):
        """(the network's channels of a region, non-finite pixels read as `fill`; its alpha, or None)."""
        stored = self._stored(y0, y1, x0, x1)
        region = stored[..., [self._keep_channels[c] for c in self.nuclear]]
        alpha = stored[..., self._alpha] if self._alpha is not None else None
        if region.dtype.kind == "f":
            bad = ~np.isfinite(region)
            if bad.any():
                if not self._nonfinite_warned:
                    log.warning(
                        "%s: %d pixels in rows %d-%d, columns %d-%d are NaN or infinite; they are read as background (the median of its finite pixels)",
                        self.name, int(bad.any(-1).sum()), y0, y1, x0, x1,
                    )  # fmt: skip
                    self._nonfinite_warned = True
                region = np.where(bad, self.fill, region)
        return region, alpha

    def read(self, y0, y1, x0, x1):
        """The network's channels of a region, (h, w, 1) or (h, w, 3) (an RGB image whose three
        colours are equal reads as gray); non-finite pixels read as the image's background (the
        median of its finite pixels), pixels that are not sample (transparent, alpha 0, or of a
        fill's colour: appearance.sample_mask) as the value its Appearance maps to background."""
        region, alpha = self._network(y0, y1, x0, x1)
        hidden = ~(alpha > 0) if alpha is not None else None
        if self.appearance.fills:
            filled = fill_mask(region, self.appearance)
            hidden = filled if hidden is None else hidden | filled
        if hidden is not None and hidden.any():
            region = np.where(hidden[..., None], self.background, region)
        if region.shape[-1] == 3 and np.array_equal(region[..., 0], region[..., 1]) and np.array_equal(region[..., 0], region[..., 2]):
            region = region[..., :1]
        return np.ascontiguousarray(region)

    def read_all(self):
        """The whole image's network channels (small images only: reads everything)."""
        return self.read(0, self.height, 0, self.width)

    def _strided(self, channels):
        sy, sx = max(1, self.height // 512), max(1, self.width // 512)
        rows = sy * max(1, 256 // sy)
        # Copies: a strided view would keep its whole band alive, so the list would hold the image.
        bands = [self.read_channels(y, min(y + rows, self.height), 0, self.width, channels)[::sy, ::sx].copy() for y in range(0, self.height, rows)]
        return np.concatenate(bands)

    @property
    def fill(self):
        """Per-channel value standing in for non-finite pixels: the median of the finite ones."""
        if not hasattr(self, "_fill"):
            raw = self._strided(self.nuclear).astype(np.float64)
            raw[~np.isfinite(raw)] = np.nan
            if np.isnan(raw).all():
                raise InputError(self.name, "has no finite pixel value (all NaN or infinite)", "Check the file: it holds no image")
            self._fill = np.nanmedian(raw.reshape(-1, raw.shape[-1]), axis=0).astype(self.dtype)
        return self._fill

    @property
    def sample(self):
        """appearance.pixel_sample's strided pixels of the network channels, read a band of rows
        at a time (once: a lazy image is read whole for it); sample_alpha: those of its alpha."""
        if not hasattr(self, "_sample"):
            sy, sx = max(1, self.height // 512), max(1, self.width // 512)
            rows = sy * max(1, 256 // sy)
            bands, alphas = [], []
            for y in range(0, self.height, rows):
                region, alpha = self._network(y, min(y + rows, self.height), 0, self.width)
                # Copies: a strided view would keep its whole band alive, so the list would hold the image.
                bands.append(region[::sy, ::sx].copy())
                alphas.append(alpha[::sy, ::sx].copy() if alpha is not None else None)
            self._sample = np.concatenate(bands)
            self.sample_alpha = np.concatenate(alphas) if self._alpha is not None else None
        return self._sample

    @property
    def appearance(self):
        """The image's Appearance (intensity range, polarity, modality) as normalize() finds it,
        from the same strided pixels (appearance.pixel_sample's), those that are sample
        (appearance.sample_mask: not transparent, not a fill or speck set apart)."""
        if not hasattr(self, "_appearance"):
            sample = self.sample
            if self.sample_alpha is not None and not (self.sample_alpha > 0).any():
                raise InputError(
                    self.name,
                    "is transparent everywhere (alpha 0 in every pixel sampled): it shows no sample",
                    "Save it with its alpha opaque where the sample is",
                )
            look = appearance(sample, self.sample_alpha)
            for colour in look.fills:
                log.warning(
                    "%s: an area of the exact colour %s, set apart from every other pixel (a padded margin, a blanked label, a saturated speck?), "
                    "is not taken for sample: left out of the intensity range and read as background",
                    self.name, colour if len(colour) > 1 else colour[0],
                )  # fmt: skip
            self._appearance = look
        return self._appearance

    @property
    def background(self):
        """The raw value that the image's Appearance maps to background (transparent pixels read as it)."""
        value = self.appearance.background
        if self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            value = min(max(round(value), info.min), info.max)
        return np.asarray(value, dtype=self.dtype if self.dtype != bool else np.uint8)

    def describe(self):
        """One line for logs: size, channels, nuclear channel(s), pixel size."""
        size = f"{self.pixel_size[1]:g}x{self.pixel_size[0]:g} um pixels ({self.pixel_size_source})" if self.pixel_size else "pixel size unknown (pixel units)"
        picked = "rgb" if len(self.nuclear) == 3 else self.channel_names[self.nuclear[0]]
        return f"{self.width}x{self.height}, {self.channels} channel(s) {list(self.channel_names)}, nuclear: {picked}, {size}"

    def close(self):
        if self._keep is not None:
            self._keep.close()
            self._keep = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def array_source(image, name: str = "image", channel: int | str | None = None, pixel_size_um: float = 0) -> "RegionSource":
    """A RegionSource for an image as Python code holds one: a numpy array (H, W) or (H, W, C),
    a masked array, whose masked pixels are not sample (read as an alpha of 0: left out of the
    statistics and read as background; its data there may be anything), or nested lists."""
    if isinstance(image, np.ma.MaskedArray):
        data, hidden = np.ma.getdata(image), np.ma.getmaskarray(image)
        if not hidden.any():
            return RegionSource(data, name, channel=channel, pixel_size_um=pixel_size_um)
        axes = guess_axes(data.shape)
        if axes not in ("YX", "YXC"):
            raise InputError(name, f"is a masked array of shape {data.shape}", "Pass an (H, W) or (H, W, C) masked array (channels last)")
        planes = data[..., None] if axes == "YX" else data
        hidden = hidden if axes == "YX" else hidden.any(axis=-1)  # a pixel with any channel masked
        stacked = np.concatenate([planes, (~hidden)[..., None].astype(planes.dtype)], axis=-1)
        rgb = axes == "YXC" and planes.shape[-1] == 3  # as the unmasked array would be read
        return RegionSource(stacked, name, "YXC", channel, rgb=rgb, alpha=planes.shape[-1], pixel_size_um=pixel_size_um)
    if not (hasattr(image, "shape") and hasattr(image, "dtype")):
        try:
            image = np.asarray(image)
        except ValueError as exc:  # rows of different lengths
            raise InputError(name, f"cannot be read as an array of pixels ({exc})", "Pass an (H, W) or (H, W, C) array, or rows of equal length") from exc
        if image.dtype == object:
            raise InputError(name, "holds values that are not numbers (or rows of different lengths)", "Pass an (H, W) or (H, W, C) array of numbers")
    return RegionSource(image, name, channel=channel, pixel_size_um=pixel_size_um)


# ---------------------------------------------------------------- TIFF / OME-TIFF


def _ome_info(tif, name):
    """(channel names, (y, x) pixel size in um or None) of the first OME Image, and the number of Images."""
    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError as exc:
        raise InputError(name, f"has unreadable OME-XML metadata ({exc})", "Re-save it with a current writer (Fiji/Bio-Formats, tifffile)") from exc
    images = [e for e in root if e.tag.endswith("}Image") or e.tag == "Image"]
    pixels = next((e for e in images[0] if e.tag.endswith("Pixels")), None) if images else None
    if pixels is None:
        return None, None, len(images)
    names = [c.get("Name") or c.get("Fluor") or "" for c in pixels if c.tag.endswith("}Channel") or c.tag == "Channel"]
    size = []
    for axis in ("Y", "X"):
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            return names, None, len(images)
        factor = unit_to_um(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if factor is None:
            raise InputError(
                name,
                f"gives PhysicalSize{axis} in the unknown unit {pixels.get(f'PhysicalSize{axis}Unit')!r}",
                f"Set {setting('segment.pixel_size_um')} to the pixel size in micrometres",
            )
        size.append(float(value) * factor)
    return names, tuple(size), len(images)


def _tiff_resolution(tif, page, name):
    """((y, x) um per pixel, where it came from) from the resolution tags, or (None, None): in
    ImageJ's calibration unit ("imagej"), or in a ResolutionUnit of cm, mm or um giving a pixel
    size within PLAUSIBLE_TIFF_PIXEL_UM ("tiff"). Dots per inch (the TIFF default unit) are a
    scanner's or a screen's (72, 300, 600 dpi), never a microscope's pixel size: ignored."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None, None
    per = []
    for key in ("YResolution", "XResolution"):
        num, den = tags[key].value
        per.append(num / den if den else 0.0)
    if min(per) <= 0:
        return None, None
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    dpi = f"{name}: resolution %g dpi ignored: {DPI_IS_NOT_A_PIXEL_SIZE}"
    if tif.is_imagej and (tif.imagej_metadata or {}).get("unit"):
        factor = unit_to_um(tif.imagej_metadata["unit"])
        if factor == _UNITS_UM["inch"]:
            log.info(dpi, per[1])
            return None, None
        if factor is None:
            return None, None  # "pixel", "inch" spelled oddly...: no physical size
        return tuple(factor / p for p in per), "imagej"
    factor = {3: 1e4, 4: 1e3, 5: 1.0}.get(unit)  # cm, mm, um (4 and 5: tifffile's extension)
    if factor is None:
        if unit == 2:
            log.info(dpi, per[1])
        return None, None  # ResolutionUnit NONE: no physical size
    size = tuple(factor / p for p in per)
    low, high = PLAUSIBLE_TIFF_PIXEL_UM
    if not all(low <= v <= high for v in size):
        log.warning(
            "%s: its TIFF resolution gives %g x %g um pixels, outside %g-%g um: ignored (pixel units; set segment.pixel_size_um)",
            name,
            size[1],
            size[0],
            low,
            high,
        )
        return None, None
    return size, "tiff"


def _tiff_layout(tif, name):
    """(shape, axes, channel names, rgb, alpha, pixel size, its source, series, kind) of a TIFF's
    one image; axes as RegionSource reads them, from the OME/ImageJ metadata or the TIFF tags;
    kind: "palette", "cmyk" or None."""
    series = [s for s in tif.series if not s.keyframe.is_reduced]
    names, pixel_size, n_images = _ome_info(tif, name) if tif.is_ome else (None, None, len(series))
    pixel_source = "ome" if pixel_size is not None else None
    if len(series) > 1 or n_images > 1:
        shapes = ", ".join(str(s.shape) for s in series[:5])
        raise InputError(
            name,
            f"holds {max(len(series), n_images)} image series ({shapes}); reading only the first would silently drop the others",
            "Save each series as a file of its own (Fiji: Bio-Formats Importer, then Save As; or tifffile) and segment those",
        )
    if not series:
        raise InputError(name, "holds no image", "Replace it with a TIFF holding one 2D image")
    s = series[0]
    page = s.keyframe
    shape, axes = tuple(s.shape), s.axes
    photometric, extras = int(page.photometric), [int(e) for e in page.extrasamples]
    rgb, alpha, kind = False, None, None
    if photometric == 6:  # YCbCr
        if int(page.compression) not in JPEG_COMPRESSIONS:
            raise InputError(
                name,
                "stores its colours as YCbCr without JPEG compression, which is not converted to RGB here",
                "Re-save it as RGB (Fiji: Image > Type > RGB Color, then File > Save As > Tiff)",
            )
        photometric = 2  # JPEG-compressed YCbCr: tifffile decodes it to RGB
    if photometric == 5 and int(page.tags["InkSet"].value if "InkSet" in page.tags else 1) == 1:
        kind = "cmyk"  # printing inks, not light: never taken for RGB
        if names is None and page.samplesperpixel - len(extras) == 4 and not extras:
            names = ["cyan", "magenta", "yellow", "black"]
    if tif.is_ome or tif.is_imagej:  # the axes are the metadata's own
        rgb = "S" in axes and photometric == 2 and page.samplesperpixel - len(extras) == 3
    elif photometric == 3 and len(tif.pages) == 1:
        kind = "palette"  # indices mean nothing: read the colours of its colormap
    elif photometric == 2 and int(page.planarconfig) == 1 and axes.endswith("S"):
        rgb = True  # interleaved RGB(A): a colour image
    elif photometric == 2:
        # Planar "RGB": what tifffile writes from any (3, H, W) array, a Z-stack as well.
        axes = axes.replace("S", "P")
    elif len(tif.pages) == 1:
        pass  # one gray page (samples, if any, are channels; extra samples may be alpha)
    else:
        # Pages of unknown meaning: the writer's own record of the axes, else only an
        # unambiguous shape ((H, W, C) channels last); leading planes stay unknown (P).
        record = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
        axes = str(record.get("axes", "")).upper() or guess_axes(shape)
        if not axes or len(axes) != len(shape):
            raise InputError(
                name,
                f"has shape {shape} and no metadata naming its axes; expected one 2D gray, RGB or multichannel image",
                "Save one 2D plane per file (split stacks and time series first)",
            )
    if "S" in axes and extras:
        first_extra = page.samplesperpixel - len(extras)
        alpha = next((first_extra + i for i, e in enumerate(extras) if e in (1, 2)), None)
    if "C" in axes and "S" in axes and dict(zip(axes, shape))["S"] > 1 and dict(zip(axes, shape))["C"] > 1:
        raise InputError(
            name,
            f"has both channels and samples per pixel (axes {axes})",
            "Save it with one sample per pixel per channel (Fiji: Image > Color > Split Channels)",
        )
    if pixel_size is None:
        pixel_size, pixel_source = _tiff_resolution(tif, page, name)
    return shape, axes.replace("S", "C") if "C" not in axes else axes, names, rgb, alpha, pixel_size, pixel_source, s, kind


def _check_tiff_storage(s, shape, axes, name, stored_bytes, whole):
    """Declared sizes, chunk sizes and tile reuse of a TIFF series, from its tags only."""
    page = s.keyframe
    itemsize = np.dtype(s.dtype).itemsize
    sizes = dict(zip(axes, shape))
    channels = math.prod(n for a, n in sizes.items() if a not in "YX")
    compressed = int(page.compression) != 1
    height, width = sizes.get("Y", 0), sizes.get("X", 0)
    check_dims(name, height, width, channels, itemsize)
    offsets = [o for o in page.dataoffsets if o]
    if compressed and len(offsets) > 16 and len(set(offsets)) < len(offsets) // 2:
        raise InputError(
            name,
            f"declares {width}x{height} pixels but its {len(offsets)} chunks share {len(set(offsets))} stored ones (a likely decompression bomb)",
            BOMB_REMEDY,
        )
    check_dims(name, height, width, channels, itemsize, whole=whole, stored_bytes=stored_bytes if compressed else None)
    rows = page.tilelength if page.is_tiled else min(page.rowsperstrip or page.imagelength, page.imagelength)
    chunk = (page.tilewidth if page.is_tiled else page.imagewidth) * rows * page.samplesperpixel * itemsize
    if chunk > MAX_CHUNK_BYTES:
        raise InputError(
            name,
            f"stores its pixels in chunks of {chunk} bytes, over the {MAX_CHUNK_BYTES} byte limit",
            "Re-save it tiled (e.g. tifffile.imwrite(..., tile=(512, 512)))",
        )


def _open_tiff(tif, name, channel, pixel_size_um, stored_bytes, lazy_path=None):
    shape, axes, names, rgb, alpha, pixel_size, pixel_source, s, kind = _tiff_layout(tif, name)
    _check_tiff_storage(s, shape, axes, name, stored_bytes, whole=lazy_path is None or kind == "palette")
    if kind == "cmyk" and isinstance(channel, str) and channel.strip().lower() == "rgb":
        raise InputError(
            name,
            "is a CMYK image (printing inks: cyan, magenta, yellow, black), not the red, green and blue of an RGB image (segment.channel: rgb)",
            "Convert it to RGB first (Fiji: Image > Type > RGB Color; ImageMagick: magick in.tif -colorspace sRGB out.tif), "
            "or set segment.channel to one ink's index or name",
        )
    if kind == "palette":
        page = s.keyframe
        check_dims(name, page.imagelength, page.imagewidth, 3, 2, whole=True)
        array = np.moveaxis(page.colormap[:, page.asarray()], 0, -1)  # (H, W, 3) uint16 colours
        return RegionSource(array, name, "YXC", channel, rgb=True, pixel_size=pixel_size, pixel_size_um=pixel_size_um, pixel_size_source=pixel_source)
    if lazy_path is None:
        array = s.asarray()
    elif s.dataoffset is not None:  # uncompressed and contiguous: map it, read nothing yet
        array = tifffile.memmap(lazy_path, mode="r", series=tif.series.index(s))
    else:
        import zarr

        array = zarr.open(s.aszarr(level=0), mode="r")  # a pyramid's full resolution (its SubIFDs: the levels below)
    if "P" in axes and isinstance(channel, str) and channel.lower() == "rgb":
        rgb = True
    keep = tif if lazy_path is not None else None
    return RegionSource(array, name, axes, channel, names, rgb, alpha, pixel_size, pixel_size_um, keep=keep, pixel_size_source=pixel_source)


# ---------------------------------------------------------------- PNG / JPEG (Pillow)


def image_format(head, name):
    """The format of a file, "PNG", "JPEG" or "TIFF", from its first bytes (at least 16), whatever
    its name says (a name that says another is logged); anything else is refused, named."""
    kind = next((k for signature, k in SIGNATURES if head.startswith(signature)), None)
    if kind is None:
        other = next((k for signature, k in OTHER_SIGNATURES if head.startswith(signature)), None)
        if other:
            raise UnreadableImage(
                name, f"cannot be decoded as an image: it holds {other} data, not PNG, JPEG or TIFF", "Convert it to PNG or TIFF, or remove it from the input"
            )
        what = "an empty file" if not head else "unrecognised or truncated data"
        raise UnreadableImage(
            name,
            f"cannot be decoded as an image ({what}: not a PNG, JPEG or TIFF file)",
            "The file is corrupt or truncated: replace it or remove it from the input",
        )
    named = NAMED_FORMATS.get(os.path.splitext(str(name))[1].lower())
    if named and named != kind:
        log.warning("%s: holds %s data though its name says %s; read as %s (the format its bytes begin with)", name, kind, named, kind)
    return kind


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


# ---------------------------------------------------------------- OME-Zarr (NGFF)


def is_zarr(path):
    path = Path(path)
    return path.is_dir() and (path.suffix.lower() in ZARR_SUFFIXES or any((path / f).exists() for f in (".zattrs", "zarr.json", ".zgroup")))


def _multiscales(attrs):
    return attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")


def _open_zarr(path, name, channel, pixel_size_um):
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
        if not _multiscales(attrs) and "bioformats2raw.layout" in {**attrs, **attrs.get("ome", {})} and "0" in group:
            group = group["0"]  # bioformats2raw: the first image of the container
            attrs = group.attrs.asdict()
    except Exception as exc:
        raise InputError(
            name,
            f"cannot be opened as a Zarr group ({type(exc).__name__}: {exc})",
            "Point to an OME-Zarr image folder (NGFF), e.g. written by bioformats2raw or ome-zarr",
        ) from exc
    multiscales = _multiscales(attrs)
    if not multiscales:
        raise InputError(
            name,
            "holds no multiscale image (no 'multiscales' in its OME-Zarr attributes)",
            "Point to one OME-Zarr image folder (NGFF 0.4/0.5, e.g. from bioformats2raw or ome-zarr), not a plate, a labels group or a plain Zarr array",
        )
    ms = multiscales[0]
    try:
        array = group[ms["datasets"][0]["path"]]
    except Exception as exc:
        raise InputError(
            name, f"names a full-resolution dataset it does not hold ({type(exc).__name__}: {exc})", "The OME-Zarr is incomplete: write it again"
        ) from exc
    axes_meta = ms.get("axes") or list("tczyx"[-array.ndim :])
    axis_names = [(a["name"] if isinstance(a, dict) else str(a)).lower() for a in axes_meta]
    if len(axis_names) != array.ndim:
        raise InputError(name, f"declares axes {axis_names} for an array of shape {array.shape}", "The OME-Zarr metadata is inconsistent: write it again")
    axes = "".join({"y": "Y", "x": "X", "c": "C", "z": "Z", "t": "T"}.get(a, "Q") for a in axis_names)
    sizes = dict(zip(axes, array.shape))
    check_dims(name, sizes.get("Y", 0), sizes.get("X", 0), sizes.get("C", 1), np.dtype(array.dtype).itemsize)
    chunk = math.prod(array.chunks) * np.dtype(array.dtype).itemsize
    if chunk > MAX_CHUNK_BYTES:
        raise InputError(
            name, f"stores its pixels in chunks of {chunk} bytes, over the {MAX_CHUNK_BYTES} byte limit", "Re-write it with smaller chunks (e.g. 1024x1024)"
        )
    scale = [1.0] * len(axes)
    for transform in list(ms["datasets"][0].get("coordinateTransformations", [])) + list(ms.get("coordinateTransformations", [])):
        if transform.get("type") == "scale":
            scale = [a * b for a, b in zip(scale, transform["scale"])]
    pixel_size = None
    if "Y" in axes and "X" in axes:
        units = [unit_to_um(a.get("unit")) if isinstance(a, dict) and a.get("unit") else None for a in axes_meta]
        iy, ix = axes.index("Y"), axes.index("X")
        if units[iy] and units[ix]:
            pixel_size = (scale[iy] * units[iy], scale[ix] * units[ix])
    names = [(c.get("label") or "") for c in (attrs.get("omero") or (attrs.get("ome") or {}).get("omero") or {}).get("channels", [])]
    return RegionSource(array, name, axes, channel, names or None, rgb=False, pixel_size=pixel_size, pixel_size_um=pixel_size_um, pixel_size_source="ome")


# ---------------------------------------------------------------- entry points


def _head(path):
    try:
        with open(path, "rb") as file:
            return file.read(16)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable (a broken link?)") from exc


def open_image(path: str | os.PathLike, channel: int | str | None = None, pixel_size_um: float = 0) -> "RegionSource":
    """A RegionSource for an image file or OME-Zarr folder, in the format its first bytes say
    (image_format); TIFFs are memory-mapped or read chunk by chunk, Zarr chunk by chunk,
    PNG/JPEG decoded whole (within MAX_DECODED_BYTES)."""
    path = Path(path)
    name = str(path)
    if is_zarr(path):
        return _open_zarr(path, name, channel, pixel_size_um)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable (a broken link?)") from exc
    kind = image_format(_head(path), name)
    if kind != "TIFF":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableImage(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable") from exc
        return _decode(data, name, channel, pixel_size_um, kind)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:
        raise UnreadableImage(path, f"cannot be read as a TIFF ({type(exc).__name__}: {exc})", "The file is corrupt or truncated: replace it") from exc
    try:
        return _open_tiff(tif, name, channel, pixel_size_um, size, lazy_path=path)
    except InputError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise UnreadableImage(path, f"cannot be read ({type(exc).__name__}: {exc})", "The file is corrupt or truncated: replace it") from exc


def image_size(path, channel=None, pixel_size_um=0):
    """(height, width) of an image file or OME-Zarr folder, as open_image gives them, without
    decoding PNG or JPEG pixels (their header says); TIFF and Zarr open lazily anyway."""
    path = Path(path)
    if is_zarr(path) or image_format(_head(path), str(path)) == "TIFF":
        with open_image(path, channel, pixel_size_um) as source:
            return source.height, source.width
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(path, f"cannot be read ({exc.strerror})", "Check that it exists and is readable") from exc
    with _pil_image(data, str(path), image_format(data[:16], str(path))) as img:
        return img.height, img.width


def _decode(data, name, channel, pixel_size_um, kind):
    try:
        if kind == "TIFF":
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                return _open_tiff(tif, name, channel, pixel_size_um, len(data))
        return _open_pil(data, name, channel, pixel_size_um, kind)
    except InputError:
        raise
    except Exception as exc:
        detail = "unrecognised or truncated data" if isinstance(exc, SyntaxError) else f"{type(exc).__name__}: {exc}"
        remedy = "The file is corrupt or truncated: replace it or remove it from the input"
        raise UnreadableImage(name, f"cannot be decoded as an image ({detail})", remedy) from exc


def open_bytes(data, name, channel=None, pixel_size_um=0):
    """A RegionSource, decoded whole, for the bytes of a PNG, JPEG or TIFF file (e.g. a zip
    member), in the format its first bytes say (image_format); `name` is used in messages."""
    return _decode(data, name, channel, pixel_size_um, image_format(data[:16], name))


# ---------------------------------------------------------------- short forms: the whole image


def decode_image(data: bytes, name: str, channel: int | str | None = None) -> np.ndarray:
    """The network channels, (H, W, 1 or 3), of PNG/JPEG/TIFF bytes (open_bytes: the file's own
    metadata, the size limits); `name` is used for the format and in messages."""
    return open_bytes(data, name, channel).read_all()


def read_image(path: str | os.PathLike, channel: int | str | None = None) -> np.ndarray:
    """The network channels, (H, W, 1 or 3), of an image file (open_image)."""
    with open_image(path, channel) as source:
        return source.read_all()


def to_hwc(array, name, channel=None):
    """A bare array, (H, W) or (H, W, C), as the network's (H, W, 1 or 3) (RegionSource: 3
    channels are RGB; other counts need `channel`)."""
    return RegionSource(array, name, channel=channel).read_all()


def image_entries(folder):
    """(images, skipped) of a folder: image files and OME-Zarr folders that open_image reads,
    sorted by name, and [(path, reason)] for every other visible entry (never silently)."""
    images, skipped = [], []
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith("."):
            continue
        if is_zarr(path):
            images.append(path)
        elif path.is_dir():
            skipped.append((path, "a folder (subfolders are not searched)"))
        elif not path.exists():
            skipped.append((path, "a broken link (its target does not exist)"))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            skipped.append((path, f"not an image this tool reads ({', '.join(IMAGE_SUFFIXES + ZARR_SUFFIXES)})"))
    return images, skipped


def file_fingerprint(path):
    """What identifies a file's content cheaply: size, mtime (ns) and inode; for a Zarr folder,
    those of every file in it."""
    path = Path(path)
    if path.is_dir():
        return [[str(p.relative_to(path)), *file_fingerprint(p)] for p in sorted(path.rglob("*")) if p.is_file()]
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]
