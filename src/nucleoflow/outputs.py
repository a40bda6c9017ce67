"""What `segment` writes for each image (segment.outputs), fed block by block as nuclei are final."""

import math

import numpy as np
from scipy import ndimage as ndi

from .formats import GeoJsonWriter, RoiZipWriter
from .measure import measure, outline

OUTPUTS = ("labels", "measurements", "geojson", "imagej_rois", "ome_zarr")
DEFAULT_OUTPUTS = ("labels", "measurements")
SUFFIXES = {"labels": ".tif", "measurements": ".csv", "geojson": ".geojson", "imagej_rois": ".rois.zip", "ome_zarr": ".ome.zarr"}


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


class NucleusOutputs:
    """Measurements, GeoJSON and ROIs of one image, written as label_bands hands over each
    block's final nuclei (on_block), so every nucleus is measured once, whole."""

    def __init__(self, paths, planes, channel_names=None, pixel_size_um=None):
        self.planes, self.pixel_size_um = planes, pixel_size_um
        self.channel_names = channel_names or [str(c) for c in range(planes.shape[0])]
        self.table = None if "measurements" not in paths else open(paths["measurements"], "w", newline="")
        self.geojson = GeoJsonWriter(paths["geojson"]) if "geojson" in paths else None
        self.rois = RoiZipWriter(paths["imagej_rois"]) if "imagej_rois" in paths else None
        self.areas = []

    def on_block(self, labels, origin):
        if self.table is None and self.geojson is None:  # only the summary's areas: no intensities to read
            areas = np.bincount(labels.ravel())[1:]
            self.areas.append(areas[areas > 0])
        else:
            y0, x0 = origin
            intensity = np.moveaxis(self.planes[:, y0 : y0 + labels.shape[0], x0 : x0 + labels.shape[1]].compute(), 0, -1)
            frame = measure(labels, intensity, origin, self.channel_names, self.pixel_size_um)
            self.areas.append(frame["area"].to_numpy())
            if self.table is not None:
                frame.to_csv(self.table, header=self.table.tell() == 0, index=False)
        if self.geojson is None and self.rois is None:
            return
        first = int(labels[labels > 0].min())
        boxes = ndi.find_objects(np.where(labels > 0, labels - (first - 1), 0))
        records = frame.to_dict("records") if self.geojson is not None else None
        for i, box in enumerate(boxes):
            label = first + i
            polygons = outline(labels[box] == label, (origin[0] + box[0].start, origin[1] + box[1].start))
            if self.geojson is not None:
                self.geojson.add(label, polygons, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in records[i].items() if k != "label"})
            if self.rois is not None:
                self.rois.add(label, polygons)

    def close(self):
        for writer in (self.table, self.geojson, self.rois):
            if writer is not None:
                writer.close()

    def summary(self):
        areas = np.concatenate([np.zeros(0, np.int64), *self.areas])
        row = {"nuclei": len(areas), "median_area": float(np.median(areas)) if len(areas) else 0.0}
        if self.pixel_size_um:
            row["median_area_um2"] = row["median_area"] * self.pixel_size_um**2
        return row
