"""What `segment` writes for each image (segment.outputs), fed block by block as nuclei are final."""

import contextlib
import itertools
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .atomic import replace_into
from .formats import GeoJsonWriter, RoiZipWriter, read_geojson_features, read_rois, renamed_roi, roi_bytes, write_label_ome_tiff, write_ome_zarr
from .measure import measure, outline
from .overlay import Overlay

OUTPUTS = ("labels", "measurements", "geojson", "imagej_rois", "ome_zarr", "overlay")
DEFAULT_OUTPUTS = ("labels", "measurements")
# No suffix ends another, so two images' outputs never share a name; the folder's index.html
# (overlay.INDEX) ends in none of them, so no image's output can take its name.
SUFFIXES = {
    "labels": ".tif",
    "measurements": ".csv",
    "geojson": ".geojson",
    "imagej_rois": ".rois.zip",
    "ome_zarr": ".ome.zarr",
    "overlay": ".overlay.png",
}


class _Planes:
    """A RegionSource's channels as a lazy (C, H, W) array for dask: every channel of the file,
    alpha dropped, read through reader.RegionSource.read_channels (raw values, NaN kept)."""

    def __init__(self, source):
        self.source = source
        self.shape = (source.channels, source.height, source.width)
        self.dtype = source.dtype if source.dtype != bool else np.dtype(np.uint8)
        self.ndim = 3

    def __getitem__(self, index):
        c, y, x = index
        return np.moveaxis(self.source.read_channels(y.start, y.stop, x.start, x.stop), -1, 0)[c]


def channel_planes(source, chunk=1024):
    """The image's channels as a lazy (C, H, W) dask array (reader.RegionSource.read_channels)."""
    import dask.array as da

    return da.from_array(_Planes(source), chunks=(-1, chunk, chunk), asarray=False, fancy=False)


@dataclass(frozen=True)
class Nucleus:
    """One nucleus's entries in the outputs (None: that output is not written)."""

    label: int
    area: int  # pixels
    row: str | None = None  # its line of the measurements CSV
    feature: dict | None = None  # its GeoJSON feature
    roi: bytes | None = None  # its ImageJ ROI

    def relabelled(self, label):
        """The same nucleus under another label, in every output."""
        row = None if self.row is None else f"{label},{self.row.split(',', 1)[1]}"
        feature = None if self.feature is None else {**self.feature, "properties": {**self.feature["properties"], "name": str(label), "label": label}}
        return Nucleus(label, self.area, row, feature, None if self.roi is None else renamed_roi(self.roi, label))


class NucleusOutputs:
    """Measurements, GeoJSON and ROIs of one image, written as label_bands hands over each
    block's final nuclei (on_block), so every nucleus is measured once, whole."""

    def __init__(self, paths, planes, channel_names=None, pixel_size_um=None):
        self.planes, self.pixel_size_um = planes, pixel_size_um
        self.channel_names = channel_names or [str(c) for c in range(planes.shape[0])]
        self.table = None if "measurements" not in paths else open(paths["measurements"], "w", newline="")
        if self.table is not None:  # the header first, so an image without nuclei gets a table pandas reads
            self.table.write(self.header())
        self.geojson = GeoJsonWriter(paths["geojson"]) if "geojson" in paths else None
        self.rois = RoiZipWriter(paths["imagej_rois"]) if "imagej_rois" in paths else None
        self.areas = []

    def header(self):
        """The measurements' header line: measure's columns, from an image without objects."""
        empty = measure(np.zeros((1, 1), np.uint32), np.zeros((1, 1, self.planes.shape[0]), self.planes.dtype), (0, 0), self.channel_names, self.pixel_size_um)
        return empty.to_csv(index=False)

    def on_block(self, labels, origin):
        for nucleus in self.nuclei(labels, origin):
            self.add(nucleus)

    def nuclei(self, labels, origin):
        """The Nucleus of every label of `labels` (a region of the image holding them whole,
        top-left pixel `origin` (y, x)), in label order."""
        if self.table is None and self.geojson is None:  # only the summary's areas: no intensities to read
            counts = np.bincount(labels.ravel())[1:]
            ids = np.nonzero(counts)[0] + 1
            areas, rows, records = counts[ids - 1], [None] * len(ids), [None] * len(ids)
        else:
            y0, x0 = origin
            intensity = np.moveaxis(self.planes[:, y0 : y0 + labels.shape[0], x0 : x0 + labels.shape[1]].compute(), 0, -1)
            frame = measure(labels, intensity, origin, self.channel_names, self.pixel_size_um)
            ids, areas = frame["label"].to_numpy(), frame["area"].to_numpy()
            rows = frame.to_csv(index=False).splitlines(keepends=True)[1:]  # the header was written first
            records = frame.drop(columns="label").to_dict("records")
        if self.geojson is None and self.rois is None:
            return [Nucleus(int(label), int(area), row) for label, area, row in zip(ids, areas, rows)]
        first = int(ids[0]) if len(ids) else 1
        boxes = ndi.find_objects(np.where(labels >= first, labels - (first - 1), 0))
        found = []
        for label, area, row, record in zip(ids, areas, rows, records):
            box = boxes[label - first]
            polygons = outline(labels[box] == label, (origin[0] + box[0].start, origin[1] + box[1].start))
            feature = roi = None
            if self.geojson is not None:
                feature = GeoJsonWriter.feature(label, polygons, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
            if self.rois is not None:
                roi = roi_bytes(label, polygons)
            found.append(Nucleus(int(label), int(area), row, feature, roi))
        return found

    def read(self, paths, areas):
        """The nuclei another NucleusOutputs wrote to `paths` (labels 1, 2, ... with `areas`),
        read back one by one in label order, as Nucleus."""
        none = itertools.repeat(None)
        with contextlib.ExitStack() as stack:
            rows = none
            if self.table is not None:
                rows = stack.enter_context(open(paths["measurements"], newline=""))
                next(rows, None)  # its header, the one this table began with
            features = read_geojson_features(paths["geojson"]) if self.geojson is not None else none
            rois = read_rois(paths["imagej_rois"]) if self.rois is not None else none
            for label, area, row, feature, roi in zip(range(1, len(areas) + 1), areas, rows, features, rois):
                yield Nucleus(label, int(area), row, feature, roi)

    def add(self, nucleus):
        """Write one nucleus to every output, after those added before it."""
        if self.table is not None:
            self.table.write(nucleus.row)
        if self.geojson is not None:
            self.geojson.add(nucleus.feature)
        if self.rois is not None:
            self.rois.add(nucleus.label, nucleus.roi)
        self.areas.append(nucleus.area)

    def close(self):
        for writer in (self.table, self.geojson, self.rois):
            if writer is not None:
                writer.close()

    def summary(self):
        return area_summary(self.areas, self.pixel_size_um)


def area_summary(areas, pixel_size_um=None):
    """An image's summary row from its nuclei's areas (pixels): count and median area."""
    row = {"nuclei": len(areas), "median_area": float(np.median(areas)) if len(areas) else 0.0}
    if pixel_size_um:
        row["median_area_um2"] = row["median_area"] * pixel_size_um**2
    return row


def write_image_outputs(source, out_dir, stem, outputs, bands_for, channel_names, pixel_size_um=None):
    """Write out_dir/<stem>.<outputs> (OUTPUTS) of one image (a reader.RegionSource), all of them
    or none: the one write path of a whole image labelled in one job (Segmenter.to_files) and of
    its parts joined (shards.merge_parts). bands_for(nuclei) yields its (top, label rows), handing
    each nucleus to `nuclei` (a NucleusOutputs) once final; the OME-Zarr is made from the written
    labels, the overlay over the image. Returns the NucleusOutputs (its areas, summary())."""
    shape = (source.height, source.width)
    # Under the name remove_temporaries finds if the writer is killed.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{stem}.", suffix=".part") as tmp:
        paths = {name: Path(tmp) / f"{stem}{SUFFIXES[name]}" for name in outputs}
        labels = paths.get("labels", Path(tmp) / "labels.tif")  # the OME-Zarr is made from them
        planes = channel_planes(source)
        nuclei = NucleusOutputs(paths, planes, channel_names, pixel_size_um)
        overlay = Overlay(shape) if "overlay" in paths else None
        try:
            with contextlib.closing(bands_for(nuclei)) as bands:
                write_label_ome_tiff(labels, overlay.tap(bands) if overlay else bands, shape, pixel_size_um)
        finally:
            nuclei.close()
        if "ome_zarr" in paths:
            write_ome_zarr(paths["ome_zarr"], planes, nuclei.channel_names, labels, pixel_size_um)
        if overlay:
            overlay.write(paths["overlay"], source)
        replace_into(paths.values(), out_dir)
    return nuclei
