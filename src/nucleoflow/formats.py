"""Label outputs in the formats other tools open: pyramidal OME-TIFF, OME-Zarr, QuPath GeoJSON,
ImageJ ROIs; each written as the labels stream in, so memory stays bounded."""

import json
import math
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import roifile
import tifffile

TIFF_TILE = 256
# Sub-resolutions halve the image until its larger side is at most this (QuPath and napari
# then open even huge label images without reading the full resolution).
PYRAMID_MIN = 1024
# Label images up to this many pixels a side are written in strips, larger ones in tiles.
# ImageJ's own TIFF reader (File > Open, without Bio-Formats) refuses tiled TIFFs ("ImageJ
# cannot open tiled TIFFs") and BigTIFF, but reads zlib strips and the resolution tags. 8192 px
# keeps such a file a classic TIFF (256 MiB of uint32 at most, far below the 2**31 bytes where
# BigTIFF starts) that ImageJ holds as one 32-bit plane; and a strip spans the full width, so a
# tile reader (QuPath, Bio-Formats, zarr) reading a region decodes at most 8192 px of each row,
# still cheap. Slides above it are tiled for those readers, the ones that open slides.
STRIP_MAX_SIDE = 8192
# A strip's target size (tifffile's for compressed strips); its rows are a power of two that
# divides TIFF_TILE, so the writer's bands split into whole strips.
STRIP_BYTES = 2**18


def pyramid_strides(shape):
    """Downsampling factors of the sub-resolutions of an image of `shape` (none for small ones)."""
    n = max(0, math.ceil(math.log2(max(shape) / PYRAMID_MIN)))
    return [2**k for k in range(1, n + 1)]


def _tiles(rows):
    for y in range(0, len(rows), TIFF_TILE):
        for x in range(0, rows.shape[1], TIFF_TILE):
            yield rows[y : y + TIFF_TILE, x : x + TIFF_TILE]


def rows_per_strip(width):
    """Rows of one strip of a `width` px wide uint32 level: about STRIP_BYTES, a power of two
    from 1 to TIFF_TILE."""
    rows = max(1, STRIP_BYTES // (4 * width))
    return 1 << min(rows.bit_length() - 1, TIFF_TILE.bit_length() - 1)


def _zlib_strips(rows, rows_per_strip):
    """The zlib-compressed strips of a band of label rows (its length a multiple of
    rows_per_strip but for the image's last band). tifffile takes strips from an iterator only
    as bytes (arrays must be whole pages), so they are compressed here, one at a time."""
    for y in range(0, len(rows), rows_per_strip):
        yield zlib.compress(np.ascontiguousarray(rows[y : y + rows_per_strip], "<u4").tobytes())


def _layout(level_shape, striped):
    """tifffile.write options of one level and the function cutting its bands into chunks."""
    if striped:
        rows = rows_per_strip(level_shape[1])
        return {"rowsperstrip": rows}, lambda band: _zlib_strips(band, rows)
    return {"tile": (TIFF_TILE, TIFF_TILE)}, _tiles


def _ome_metadata(pixel_size_um):
    if not pixel_size_um:
        return {"axes": "YX"}
    return {"axes": "YX", "PhysicalSizeX": pixel_size_um, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": pixel_size_um, "PhysicalSizeYUnit": "µm"}


def _resolution(pixel_size_um, stride=1):
    """TIFF resolution tags of a level `stride` times coarser: pixels per centimetre (ImageJ and
    other readers of plain TIFF tags know no micrometre unit; the OME-XML has the µm value)."""
    if not pixel_size_um:
        return {}
    per_cm = 1e4 / (pixel_size_um * stride)
    return {"resolution": (per_cm, per_cm), "resolutionunit": tifffile.RESUNIT.CENTIMETER}


def write_label_ome_tiff(path, bands, shape, pixel_size_um=None, pyramid=True):
    """Write (top, rows) bands of uint32 labels (tops multiples of TIFF_TILE) as a zlib
    OME-TIFF with the pixel size (OME-XML and resolution tags), in strips up to STRIP_MAX_SIDE px
    a side, else in tiles, and for large images (and `pyramid`) nearest-neighbour
    sub-resolutions in SubIFDs.

    tifffile writes the levels one after the other, so each sub-resolution is kept on disk beside
    the output (1/3 of the labels' size in all) until its turn, never in memory.
    """
    path = Path(path)
    strides = pyramid_strides(shape) if pyramid else []
    striped = max(shape) <= STRIP_MAX_SIDE
    options = dict(dtype=np.uint32, compression="zlib")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        levels = [open(Path(scratch) / f"{s}.u32", "w+b") for s in strides]

        def full_resolution(chunks):
            for top, rows in bands:
                for level, s in zip(levels, strides):
                    rows[(-top) % s :: s, ::s].tofile(level)
                yield from chunks(rows)

        def sub_resolution(level, level_shape, chunks):
            level.seek(0)
            for y in range(0, level_shape[0], TIFF_TILE):
                count = min(TIFF_TILE, level_shape[0] - y) * level_shape[1]
                yield from chunks(np.fromfile(level, np.uint32, count).reshape(-1, level_shape[1]))

        try:
            with tifffile.TiffWriter(path, bigtiff=shape[0] * shape[1] * 4 > 2**31, byteorder="<", ome=True) as tif:
                layout, chunks = _layout(shape, striped)
                first = dict(subifds=len(strides), metadata=_ome_metadata(pixel_size_um), **layout, **_resolution(pixel_size_um), **options)
                tif.write(full_resolution(chunks), shape=shape, **first)
                for level, s in zip(levels, strides):
                    level_shape = (-(-shape[0] // s), -(-shape[1] // s))
                    layout, chunks = _layout(level_shape, striped)
                    sub = dict(subfiletype=1, **layout, **_resolution(pixel_size_um, s), **options)
                    tif.write(sub_resolution(level, level_shape, chunks), shape=level_shape, **sub)
        finally:
            for level in levels:
                level.close()


# Channel colours of the OME-Zarr's "omero" block (napari-ome-zarr makes one colormap of each):
# gray for one channel, else ImageJ's composite order, so an RGB image shows its own colours.
CHANNEL_COLORS = ("FF0000", "00FF00", "0000FF", "FFFFFF", "00FFFF", "FF00FF", "FFFF00")


def omero(channel_names, coarsest):
    """The NGFF 0.4 "omero" block: every channel with a label, a `color` and a `window`, as the
    spec and the ome-zarr-models validator require (napari-ome-zarr fails on channels without a
    colour: "channel_axis (0) had length 1, but the 'colormap' argument only provided 0 values").
    coarsest: the image's coarsest level (C, h, w), whose values give each channel's window."""
    colors = ["FFFFFF"] if len(channel_names) == 1 else [CHANNEL_COLORS[c % len(CHANNEL_COLORS)] for c in range(len(channel_names))]
    channels = [{"label": str(name), "color": color, "window": _window(plane), "active": True} for name, color, plane in zip(channel_names, colors, coarsest)]
    return {"channels": channels, "version": "0.4"}


def _window(plane):
    """One channel's OMERO window: start/end its lowest and highest finite value (napari's
    contrast limits, which must increase: a flat channel gets a window one unit wide); min/max
    the range its type holds (integers) or start/end (floats)."""
    values = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane.ravel()
    start, end = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if end <= start:
        end = start + 1.0
    if plane.dtype.kind in "iu":
        low, high = float(np.iinfo(plane.dtype).min), float(np.iinfo(plane.dtype).max)
    else:
        low, high = start, end
    return {"min": min(low, start), "max": max(high, end), "start": start, "end": end}


def write_ome_zarr(path, image, channel_names, labels_tiff, pixel_size_um=None, chunk=1024):
    """An OME-Zarr image of `image` (a (C, H, W) dask array) with the label pyramid of
    `labels_tiff` (write_label_ome_tiff's output) as its labels/nuclei multiscale group.

    NGFF 0.4 (Zarr v2): the version napari-ome-zarr, Fiji (MoBIE, BigDataViewer) and QuPath's
    Bio-Formats read; the image levels take the labels' strides so both overlay exactly.
    """
    import dask.array as da
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import add_metadata, write_multiscale, write_multiscale_labels

    unit = {"unit": "micrometer"} if pixel_size_um else {}
    size = pixel_size_um or 1.0
    with tifffile.TiffFile(labels_tiff) as tif:
        store = zarr.open(tif.series[0].aszarr(), mode="r")
        levels = [store[str(k)] for k in range(len(tif.series[0].levels))] if isinstance(store, zarr.Group) else [store]
        labels = [da.from_zarr(level, chunks=chunk) for level in levels]
        strides = [1, *pyramid_strides(labels[0].shape)]
        pixels = image.rechunk((1, chunk, chunk))
        root = zarr.open_group(str(path), mode="w", zarr_format=2)
        space = [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}]
        write_multiscale(
            [pixels[:, ::s, ::s] for s in strides],
            root,
            fmt=FormatV04(),
            axes=[{"name": "c", "type": "channel"}, *space],
            coordinate_transformations=[[{"type": "scale", "scale": [1.0, size * s, size * s]}] for s in strides],
            storage_options={"chunks": (1, chunk, chunk)},
            name=Path(path).name.removesuffix(".ome.zarr"),
        )
        # The channel windows come from the coarsest level as written (at most PYRAMID_MIN px a
        # side), not from a second pass over the image: so "omero" is added once the levels exist,
        # not through write_multiscale's metadata argument, which writes it before them.
        coarsest = root[root.attrs["multiscales"][0]["datasets"][-1]["path"]][...]
        add_metadata(root, {"omero": omero(channel_names, coarsest)}, fmt=FormatV04())
        write_multiscale_labels(
            labels,
            root,
            "nuclei",
            fmt=FormatV04(),
            axes=space,
            coordinate_transformations=[[{"type": "scale", "scale": [size * s, size * s]}] for s in strides],
            storage_options={"chunks": (chunk, chunk)},
        )


class GeoJsonWriter:
    """A FeatureCollection of QuPath detections, one feature written per nucleus as it comes
    (json.dump of a whole collection would hold every polygon of a slide in memory): one feature
    a line, so read_geojson_features reads them back one by one."""

    def __init__(self, path):
        self.file = open(path, "w")
        self.file.write('{"type": "FeatureCollection", "features": [\n')
        self.first = True

    @staticmethod
    def feature(label, polygons, measurements):
        rings = [[[[float(x), float(y)] for x, y in ring] for ring in polygon] for polygon in polygons]
        geometry = {"type": "Polygon", "coordinates": rings[0]} if len(rings) == 1 else {"type": "MultiPolygon", "coordinates": rings}
        return {
            "type": "Feature",
            "geometry": geometry,
            "properties": {"objectType": "detection", "name": str(label), "label": int(label), "measurements": measurements},
        }

    def add(self, feature):
        self.file.write(("" if self.first else ",\n") + json.dumps(feature))
        self.first = False

    def close(self):
        self.file.write("\n]}\n")
        self.file.close()


def read_geojson_features(path):
    """The features of a GeoJsonWriter's file, in order, read a line at a time."""
    with open(path) as file:
        next(file)
        for line in file:
            line = line.rstrip("\n").removesuffix(",")
            if line.startswith("{"):
                yield json.loads(line)


def roi_bytes(label, polygons):
    """An ImageJ ROI, named by the label, of a nucleus's outline (measure.outline's polygons)."""
    exterior = max(polygons, key=lambda polygon: len(polygon[0]))[0]  # an ImageJ polygon has one ring
    roi = roifile.ImagejRoi.frompoints(np.asarray(exterior[:-1]), name=str(label))
    roi.roitype = roifile.ROI_TYPE.TRACED  # as ImageJ's wand traces pixel edges
    return roi.tobytes()


def renamed_roi(data, label):
    """roi_bytes' ROI under another label."""
    roi = roifile.ImagejRoi.frombytes(data)
    roi.name = str(label)
    return roi.tobytes()


class RoiZipWriter:
    """ImageJ/Fiji ROIs (RoiManager zip), one traced polygon per nucleus named by its label,
    added to the zip as they come (roifile.roiwrite takes them all at once)."""

    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)

    def add(self, label, data):
        self.zip.writestr(f"{label}.roi", data)

    def close(self):
        self.zip.close()


def read_rois(path):
    """The ROIs (bytes) of a RoiZipWriter's zip, in the order they were added."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            yield archive.read(info)
