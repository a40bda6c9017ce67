"""RegionSource: an image, however it is stored, as regions of the network's channels, with its
channels, pixel size and limits; and what a format module gives reader.py (ImageFormat).

The readers (tiff_reader, pil_reader: decode.FILE_FORMATS; zarr_reader: reader.FOLDER_FORMATS)
turn a file into one;
array_source and RegionSource itself take bare arrays. reader.py's docstring says how layouts,
alpha, pixel sizes and limits are read.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
DPI_IS_NOT_A_PIXEL_SIZE = "dots per inch are a scanner's or a screen's, not a microscope's pixel size (pixel units; set segment.pixel_size_um to give one)"


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

    def read_alpha(self, y0, y1, x0, x1):
        """The alpha of a region, (h, w) raw values, or None for an image without one."""
        return self._stored(y0, y1, x0, x1)[..., self._alpha] if self._alpha is not None else None

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


@dataclass(frozen=True)
class ImageFormat:
    """A format open_image reads, from a module of its own (tiff_reader, pil_reader, zarr_reader)
    registered in decode.FILE_FORMATS (files) or reader.FOLDER_FORMATS (folders). A file format has `signatures` (its files' first bytes) and
    `decode(data, name, channel, pixel_size_um)` for its bytes held in memory; `open_file(path,
    name, channel, pixel_size_um, size)` opens a file lazily where the format allows (else its
    bytes are read and decoded whole), and `header_size(data, name)` gives (height, width) from
    a header without decoding pixels (else open_file says). A folder format (OME-Zarr) has
    `is_folder(path)` and open_file."""

    name: str
    suffixes: tuple  # what a folder's listing takes for this format
    signatures: tuple = ()
    decode: Callable | None = None
    open_file: Callable | None = None
    header_size: Callable | None = None
    is_folder: Callable | None = None

