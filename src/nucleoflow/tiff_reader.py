"""TIFF and OME-TIFF (tifffile): the layout from OME-XML, ImageJ or the TIFF tags, the pixel size
from OME, ImageJ's calibration or resolution tags; files read lazily (memory-mapped or chunk by
chunk), bytes decoded whole. Registered in decode.FILE_FORMATS."""

import io
import logging
import math
import xml.etree.ElementTree as ET

import numpy as np
import tifffile

from .errors import InputError, UnreadableImage, setting
from .region import (
    BOMB_REMEDY,
    DPI_IS_NOT_A_PIXEL_SIZE,
    MAX_CHUNK_BYTES,
    ImageFormat,
    RegionSource,
    check_dims,
    guess_axes,
    unit_to_um,
)

log = logging.getLogger(__name__)

# TIFF resolution tags are written by any software, with any value: a pixel size only in this range.
PLAUSIBLE_TIFF_PIXEL_UM = (0.01, 100.0)
# TIFF compressions whose YCbCr tifffile decodes to RGB (OJPEG, JPEG, ALT_JPEG, JPEG_LOSSY).
JPEG_COMPRESSIONS = (6, 7, 33007, 34892)


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
        if factor == unit_to_um("inch"):
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


def tiff_layout(tif, name):
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
    shape, axes, names, rgb, alpha, pixel_size, pixel_source, s, kind = tiff_layout(tif, name)
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


def open_file(path, name, channel, pixel_size_um, size):
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


def decode(data, name, channel, pixel_size_um):
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return _open_tiff(tif, name, channel, pixel_size_um, len(data))


FORMAT = ImageFormat("TIFF", (".tif", ".tiff"), (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), decode, open_file)
