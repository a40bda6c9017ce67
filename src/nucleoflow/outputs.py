"""What `segment` writes for each image (segment.outputs), fed block by block as nuclei are final."""

import contextlib
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

# What `segment` can write per image: OUTPUT_TYPES below registers each under its name.
DEFAULT_OUTPUTS = ("labels", "measurements")


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


class MeasurementsFile:
    """The measurements CSV (measure.measure's columns), a line per nucleus."""

    needs = frozenset({"measurements"})

    def __init__(self, path, nuclei):
        self.file = open(path, "w", newline="")
        self.file.write(nuclei.header())  # first, so an image without nuclei gets a table pandas reads

    @staticmethod
    def entry(label, row, record, polygons):
        return row

    def add(self, label, row):
        self.file.write(row)

    def close(self):
        self.file.close()

    @staticmethod
    def read(path):
        with open(path, newline="") as file:
            next(file, None)  # the header
            yield from file

    @staticmethod
    def relabel(row, label):
        return f"{label},{row.split(',', 1)[1]}"


class GeoJsonFile(GeoJsonWriter):
    """QuPath detections (formats.GeoJsonWriter), the nucleus's measurements as properties."""

    needs = frozenset({"measurements", "outline"})

    def __init__(self, path, nuclei):
        super().__init__(path)

    @classmethod
    def entry(cls, label, row, record, polygons):
        return cls.feature(label, polygons, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})

    def add(self, label, feature):
        super().add(feature)

    read = staticmethod(read_geojson_features)

    @staticmethod
    def relabel(feature, label):
        return {**feature, "properties": {**feature["properties"], "name": str(label), "label": label}}


class RoiFile(RoiZipWriter):
    """ImageJ/Fiji ROIs (formats.RoiZipWriter), one traced outline per nucleus."""

    needs = frozenset({"outline"})

    def __init__(self, path, nuclei):
        super().__init__(path)

    @staticmethod
    def entry(label, row, record, polygons):
        return roi_bytes(label, polygons)

    read = staticmethod(read_rois)
    relabel = staticmethod(renamed_roi)


class OmeZarrFile:
    """The image and its labels as OME-Zarr (formats.write_ome_zarr), made from the labels file."""

    def __init__(self, shape):
        """Nothing to keep as the labels pass: it is made from the labels file."""

    def tap(self, bands):
        return bands

    def write(self, path, image):
        write_ome_zarr(path, image.planes, image.channel_names, image.labels, image.pixel_size_um)


class OverlayFile(Overlay):
    """The nuclei's outlines over the image, as a PNG (overlay.Overlay), kept as the labels pass."""

    def write(self, path, image):
        super().write(path, image.source)


@dataclass(frozen=True)
class OutputType:
    """One thing `segment` can write per image, `<stem><suffix>` beside the others. `kind`:

    - "labels": the label OME-TIFF, written as the labels stream in (formats.write_label_ome_tiff);
    - "nucleus": a file with an entry per nucleus, written as each block's nuclei are final. Its
      class (`file`: MeasurementsFile, GeoJsonFile, RoiFile) is opened with (path, the image's
      NucleusOutputs), has `needs` (any of "measurements": measure's row and record of the
      nucleus, "outline": its polygons), `entry(label, row, record, polygons)`, `add(label,
      entry)`, `close()`, and reads its file back (`read(path)`: entries in order) and renames an
      entry (`relabel(entry, label)`) for the join of an image's parts (shards.py);
    - "image": made once the labels are written (`file`: OmeZarrFile, OverlayFile): opened with
      the image's shape, it sees the label bands pass (`tap(bands)`) and then writes (`write(path,
      LabelledImage)`). Parts of a huge image never write these: their join does.

    Adding an output is its class (in a module of its own, or formats.py) and its line in
    OUTPUT_TYPES.
    """

    suffix: str
    kind: str
    file: type | None = None


# No suffix ends another, so two images' outputs never share a name; the folder's index.html
# (overlay.INDEX) ends in none of them, so no image's output can take its name.
OUTPUT_TYPES = {
    "labels": OutputType(".tif", "labels"),
    "measurements": OutputType(".csv", "nucleus", MeasurementsFile),
    "geojson": OutputType(".geojson", "nucleus", GeoJsonFile),
    "imagej_rois": OutputType(".rois.zip", "nucleus", RoiFile),
    "ome_zarr": OutputType(".ome.zarr", "image", OmeZarrFile),
    "overlay": OutputType(".overlay.png", "image", OverlayFile),
}
OUTPUTS = OUTPUT_TYPES.keys()  # a live view: an output registered later is one too


def output_name(stem: str, name: str) -> str:
    """The file name of an image's output `name` (OUTPUT_TYPES), for the image's stem."""
    return f"{stem}{OUTPUT_TYPES[name].suffix}"


def in_parts(outputs) -> list[str]:
    """The outputs a part of a huge image writes (the join makes the "image" ones)."""
    return [name for name in outputs if OUTPUT_TYPES[name].kind != "image"]


@dataclass(frozen=True)
class LabelledImage:
    """What an "image" output is made from, once the labels are written."""

    source: object  # reader.RegionSource
    planes: object  # channel_planes(source)
    channel_names: list
    labels: Path  # the label OME-TIFF
    pixel_size_um: float | None


@dataclass(frozen=True)
class Nucleus:
    """One nucleus's entries in the "nucleus" outputs, by output name."""

    label: int
    area: int  # pixels
    entries: dict


class NucleusOutputs:
    """The "nucleus" outputs of one image (those of `paths`), written as label_bands hands over
    each block's final nuclei (on_block), so every nucleus is measured once, whole."""

    def __init__(self, paths, planes, channel_names=None, pixel_size_um=None):
        self.planes, self.pixel_size_um = planes, pixel_size_um
        self.channel_names = channel_names or [str(c) for c in range(planes.shape[0])]
        self.types = {name: OUTPUT_TYPES[name].file for name in paths if OUTPUT_TYPES[name].kind == "nucleus"}
        self.needs = set().union(*(kind.needs for kind in self.types.values()))
        self.files = {name: kind(paths[name], self) for name, kind in self.types.items()}
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
        if "measurements" not in self.needs:  # only areas: no intensities to read
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
        if "outline" in self.needs:
            first = int(ids[0]) if len(ids) else 1
            boxes = ndi.find_objects(np.where(labels >= first, labels - (first - 1), 0))
        found = []
        for label, area, row, record in zip(ids, areas, rows, records):
            polygons = None
            if "outline" in self.needs:
                box = boxes[label - first]
                polygons = outline(labels[box] == label, (origin[0] + box[0].start, origin[1] + box[1].start))
            entries = {name: kind.entry(int(label), row, record, polygons) for name, kind in self.types.items()}
            found.append(Nucleus(int(label), int(area), entries))
        return found

    def read(self, paths, areas):
        """The nuclei another NucleusOutputs wrote to `paths` (labels 1, 2, ... with `areas`),
        read back one by one in label order, as Nucleus."""
        with contextlib.ExitStack() as stack:
            readers = {name: stack.enter_context(contextlib.closing(kind.read(paths[name]))) for name, kind in self.types.items()}
            for label, area in zip(range(1, len(areas) + 1), areas):
                yield Nucleus(label, int(area), {name: next(reader) for name, reader in readers.items()})

    def relabelled(self, nucleus, label):
        """The same nucleus under another label, in every output."""
        return Nucleus(label, nucleus.area, {name: self.types[name].relabel(entry, label) for name, entry in nucleus.entries.items()})

    def add(self, nucleus):
        """Write one nucleus to every output, after those added before it."""
        for name, file in self.files.items():
            file.add(nucleus.label, nucleus.entries[name])
        self.areas.append(nucleus.area)

    def close(self):
        for file in self.files.values():
            file.close()

    def summary(self):
        return area_summary(self.areas, self.pixel_size_um)

def area_summary(areas, pixel_size_um=None):
    """An image's summary row from its nuclei's areas (pixels): count and median area."""
    row = {"nuclei": len(areas), "median_area": float(np.median(areas)) if len(areas) else 0.0}
    if pixel_size_um:
        row["median_area_um2"] = row["median_area"] * pixel_size_um**2
    return row


def write_image_outputs(source, out_dir, stem: str, outputs, bands_for, channel_names: list, pixel_size_um: float | None = None) -> "NucleusOutputs":
    """Write out_dir/<stem>.<outputs> (OUTPUT_TYPES) of one image (a reader.RegionSource), all of
    them or none: the one write path of a whole image labelled in one job (Segmenter.to_files) and
    of its parts joined (shards.merge_parts). bands_for(nuclei) yields its (top, label rows),
    handing each nucleus to `nuclei` (a NucleusOutputs) once final; "image" outputs see the bands
    pass and are made once the labels are written. Returns the NucleusOutputs (its areas,
    summary())."""
    shape = (source.height, source.width)
    # Under the name remove_temporaries finds if the writer is killed.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{stem}.", suffix=".part") as tmp:
        paths = {name: Path(tmp) / output_name(stem, name) for name in outputs}
        labels = paths.get("labels", Path(tmp) / "labels.tif")  # "image" outputs are made from them
        planes = channel_planes(source)
        nuclei = NucleusOutputs(paths, planes, channel_names, pixel_size_um)
        made = {name: OUTPUT_TYPES[name].file(shape) for name in outputs if OUTPUT_TYPES[name].kind == "image"}
        try:
            with contextlib.closing(bands_for(nuclei)) as bands:
                for output in made.values():
                    bands = output.tap(bands)
                write_label_ome_tiff(labels, bands, shape, pixel_size_um)
        finally:
            nuclei.close()
        image = LabelledImage(source, planes, nuclei.channel_names, labels, pixel_size_um)
        for name, output in made.items():
            output.write(paths[name], image)
        replace_into(paths.values(), out_dir)
    return nuclei
