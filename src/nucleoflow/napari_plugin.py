"""The napari plugin (manifest: napari.yaml beside this file; `pip install "nucleoflow[napari]"`).

- Segment nuclei (a dock widget): labels the chosen image layer with a shipped model or a
  model.pt, in a worker thread with a progress bar over the network's tiles, and adds a Labels
  layer "<image> nuclei" whose `features` are the per-nucleus measurements (measure.measure:
  one row per nucleus; `index`, napari's column that maps a label to its row, equals `label`).
- A reader for what `nucleoflow segment` writes: a labels TIFF (uint32, 2D) opens as a Labels
  layer scaled by its pixel size (micrometres), the measurements CSV of the same stem beside it
  as the layer's features; opening that CSV opens the pair too. Any other TIFF or CSV is left to
  napari's own readers (get_reader returns None).
"""

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton, SpinBox
from superqt.utils import ensure_main_thread

from .errors import UserError
from .measure import measure
from .region import RegionSource
from .segment import output_stem
from .shipped import DEFAULT, model_path, shipped_models
from .tiff_reader import FORMAT as TIFF
from .tiff_reader import tiff_layout

TIFF_SUFFIXES = TIFF.suffixes
MICROMETRE = {"micrometer", "micrometre", "micron", "µm", "um"}


# ---------------------------------------------------------------- reader


def _labels_tiff(path):
    """Whether `path` is a labels TIFF as segment writes them: one 2D uint32 series (other TIFFs,
    gray or colour images, are napari's own reader's)."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return series.dtype == np.uint32 and len(series.shape) == 2
    except Exception:
        return False


def _pair(path):
    """(labels TIFF, measurements CSV or None) that opening `path` opens, or None when it is not
    nucleoflow's: a labels TIFF, or a CSV with a `label` column and a labels TIFF of its stem."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        if not _labels_tiff(path):
            return None
        csv = path.parent / f"{output_stem(path)}.csv"
        return path, csv if csv.is_file() else None
    if suffix == ".csv":
        tiff = next((t for t in (path.with_suffix(s) for s in TIFF_SUFFIXES) if t.is_file() and _labels_tiff(t)), None)
        if tiff is None:
            return None
        try:
            header = pd.read_csv(path, nrows=0).columns
        except Exception:
            return None
        return (tiff, path) if "label" in header else None
    return None


def get_reader(path):
    """npe2 reader contribution: read_labels for a nucleoflow labels TIFF or measurements CSV
    (see _pair), else None so that napari tries its other readers."""
    if isinstance(path, list | tuple):
        return None
    return read_labels if _pair(path) is not None else None


def features_table(frame):
    """A measurements table as Labels features: napari maps label values to rows through an
    `index` column (otherwise row i is label i, background first)."""
    frame = frame.copy()
    frame.insert(0, "index", frame["label"].to_numpy())
    return frame.reset_index(drop=True)


def labels_data(path):
    """(labels, multiscale, (y, x) pixel size in um or None) of a labels TIFF: the full
    resolution, or for a pyramidal one (images over formats.PYRAMID_MIN px) every level, read
    lazily through zarr, for napari's multiscale; the pixel size as reader.open_image reads it
    (OME metadata, else the resolution tags)."""
    with tifffile.TiffFile(path) as tif:
        pixel_size = tiff_layout(tif, str(path))[5]
        levels = len(tif.series[0].levels)
        if levels == 1:
            return tif.series[0].asarray(), False, pixel_size
    try:
        import zarr
    except ImportError:  # the napari extra brings zarr; without it, the full resolution only
        return tifffile.imread(path), False, pixel_size
    group = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    return [group[str(k)] for k in range(levels)], True, pixel_size


def read_labels(path):
    """npe2 reader: [(labels, {name, multiscale, scale, units, features}, "labels")] for a labels
    TIFF, its pixel size (micrometres) as the scale, the measurements of its stem as features."""
    tiff, csv = _pair(path)
    data, multiscale, pixel_size = labels_data(tiff)
    kwargs = {"name": output_stem(tiff), "multiscale": multiscale}
    if pixel_size:
        kwargs.update(scale=tuple(pixel_size), units=("micrometer", "micrometer"))
    if csv is not None:
        kwargs["features"] = features_table(pd.read_csv(csv))
    return [(data, kwargs, "labels")]


# ---------------------------------------------------------------- the Segment nuclei widget

MODEL_FILE = "a model.pt file..."


@dataclass(frozen=True)
class Job:
    """One segmentation, read from the widget in the main thread, run in the worker thread."""

    name: str
    data: object  # the layer's (H, W[, C]) array (numpy, dask or zarr)
    channel: str | None
    alpha: int | None
    diameter: float
    pixel_size_um: float | None
    model: Path
    threads: int
    options: dict  # Segmenter keyword options: tta and the thresholds given
    scale: tuple
    translate: tuple
    units: tuple | None


class TileProgress:
    """What Segmenter takes as `tiles` (a tqdm bar's `total` and `update`), reporting
    (done, total) to `report` from the worker thread."""

    def __init__(self, report):
        self.report, self.n, self._total = report, 0, 0

    @property
    def total(self):
        return self._total

    @total.setter
    def total(self, value):  # set once per pass over the image (twice when the nucleus size is estimated)
        self._total, self.n = int(value), 0
        self.report(0, self._total)

    def update(self, n=1):
        self.n += n
        self.report(self.n, self._total)


def layer_pixel_size_um(layer):
    """The pixel size of an image layer in micrometres, where its units say so, else None."""
    units = getattr(layer, "units", None)
    if units is None or not all(str(u) in MICROMETRE for u in units[-2:]):
        return None
    y, x = (float(s) for s in layer.scale[-2:])
    return math.sqrt(y * x)  # as reader.RegionSource: one size for areas


def parse_threshold(text, what):
    """A threshold typed in the widget: blank -> None (the model card's), else a number in [0, 1]."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ValueError(f"{what} {text!r}: enter a number from 0 to 1, or leave it blank for the model card's")
    return value


def segment_job(job, segmenter, tiles=None):
    """(labels, features) of a Job with a loaded Segmenter: what the worker thread runs."""
    segmenter.channel, segmenter.diameter = job.channel, job.diameter
    labels = segmenter(job.data, job.name, tiles=tiles)
    source = RegionSource(job.data, job.name, channel=job.channel, alpha=job.alpha)
    intensity = source.read_channels(0, source.height, 0, source.width)
    frame = measure(labels, intensity, channel_names=list(source.channel_names), pixel_size_um=job.pixel_size_um)
    return labels, features_table(frame)


class SegmentWidget(Container):
    """Segment nuclei: the dock widget (npe2 widget contribution; napari passes the viewer)."""

    def __init__(self, napari_viewer):
        self.viewer = napari_viewer
        models = shipped_models()
        cpus = os.cpu_count() or 1
        self.image = ComboBox(label="image", choices=self._image_choices, tooltip="The image layer to segment: 2D gray, RGB(A) or multichannel")
        default = DEFAULT if DEFAULT in models else MODEL_FILE
        self.model = ComboBox(label="model", choices=[*models, MODEL_FILE], value=default, tooltip="A shipped model, or a model.pt you trained")
        self.model_file = FileEdit(label="model.pt", filter="*.pt", visible=self.model.value == MODEL_FILE)
        self.channel = LineEdit(label="channel", tooltip="The nuclear channel: an index or a name; blank: the only one, or RGB")
        self.diameter = FloatSpinBox(label="diameter (px)", min=0, max=1000, step=1, value=0, tooltip="Nucleus diameter in pixels; 0: estimated")
        self.seed_threshold = LineEdit(label="seed threshold", tooltip="Blank: the model card's tuned value")
        self.foreground_threshold = LineEdit(label="foreground threshold", tooltip="Blank: the model card's tuned value")
        self.tta = CheckBox(text="test-time augmentation (8x slower)", value=True)
        self.threads = SpinBox(label="threads", min=1, max=cpus, value=cpus)
        self.button = PushButton(text="Segment")
        self.progress = ProgressBar(label="tiles", min=0, max=1, value=0)
        self.status = Label(value="")
        super().__init__(
            widgets=[
                self.image,
                self.model,
                self.model_file,
                self.channel,
                self.diameter,
                self.seed_threshold,
                self.foreground_threshold,
                self.tta,
                self.threads,
                self.button,
                self.progress,
                self.status,
            ]
        )
        self.model.changed.connect(self._model_changed)
        self.button.changed.connect(self.run)
        self.viewer.layers.events.inserted.connect(self.reset_choices)
        self.viewer.layers.events.removed.connect(self.reset_choices)
        self.viewer.layers.selection.events.active.connect(self._select_active)
        self.worker = None
        self.error = None  # the last run's error, None after a success
        self.last_progress = None  # (tiles done, total) last reported
        self._segmenter = (None, None)  # (what it was loaded with, Segmenter): kept from run to run

    @property
    def busy(self):
        return self.worker is not None

    def _image_choices(self, _widget=None):
        from napari.layers import Image

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _select_active(self, event=None):
        from napari.layers import Image

        layer = self.viewer.layers.selection.active
        if isinstance(layer, Image) and not self.busy:
            self.reset_choices()
            with contextlib.suppress(ValueError):  # not (yet) among the choices
                self.image.value = layer

    def _model_changed(self, value):
        self.model_file.visible = value == MODEL_FILE

    def job(self):
        """The Job the widget's fields describe; ValueError (or reader's InputError) names a bad field."""
        layer = self.image.value
        if layer is None:
            raise ValueError("No image layer: open an image first")
        data = layer.data[0] if layer.multiscale else layer.data
        rgb = bool(getattr(layer, "rgb", False))
        channel = self.channel.value.strip() or ("rgb" if rgb else None)
        alpha = 3 if rgb and data.shape[-1] == 4 else None
        RegionSource(data, layer.name, channel=channel, alpha=alpha)  # layout and channel checked now, not after the network
        if self.model.value == MODEL_FILE:
            model = Path(self.model_file.value or "")
            if not model.is_file():
                raise ValueError(f"model.pt {str(model)!r} is not a file: choose one, or a shipped model")
        else:
            model = model_path(self.model.value)
        options = {"tta": bool(self.tta.value)}
        for field, what in ((self.seed_threshold, "seed_threshold"), (self.foreground_threshold, "foreground_threshold")):
            value = parse_threshold(field.value, what.replace("_", " "))
            if value is not None:
                options[what] = value
        units = getattr(layer, "units", None)
        return Job(
            name=layer.name,
            data=data,
            channel=channel,
            alpha=alpha,
            diameter=float(self.diameter.value),
            pixel_size_um=layer_pixel_size_um(layer),
            model=model,
            threads=int(self.threads.value),
            options=options,
            scale=tuple(layer.scale[-2:]),
            translate=tuple(layer.translate[-2:]),
            units=tuple(units[-2:]) if units is not None else None,
        )

    def segmenter(self, job):
        """A Segmenter for the job's model, threads and options, loaded once (in the worker thread)."""
        from .segment import Segmenter

        key = (str(job.model), job.threads, tuple(sorted(job.options.items())))
        if self._segmenter[0] != key:
            self._segmenter = (key, Segmenter(job.model, threads=job.threads, **job.options))
        return self._segmenter[1]

    def run(self):
        """Start segmenting the chosen image in a worker thread; returns the worker (None when a
        field is wrong, said in the status line, or a run is under way)."""
        if self.busy:
            return None
        try:
            job = self.job()
        except (ValueError, UserError) as exc:
            self._failed(exc)
            return None
        from napari.qt.threading import create_worker

        self.error = None
        self.button.enabled = False
        self.progress.value, self.progress.max = 0, 1
        self.status.value = f"segmenting {job.name}..."
        self.worker = create_worker(
            self._work, job, _connect={"returned": self._show, "errored": self._failed, "finished": self._finished}, _start_thread=False
        )
        self.worker.start()
        return self.worker

    def _work(self, job):
        """In the worker thread: load the model (once), segment and measure."""
        labels, features = segment_job(job, self.segmenter(job), TileProgress(self._report))
        return job, labels, features

    @ensure_main_thread
    def _report(self, done, total):
        self.last_progress = (done, total)
        self.progress.max = max(total, 1)
        self.progress.value = min(done, self.progress.max)

    def _show(self, result):
        job, labels, features = result
        name = f"{job.name} nuclei"
        kwargs = {"scale": job.scale, "translate": job.translate}
        if job.units is not None:
            kwargs["units"] = job.units
        from napari.layers import Labels

        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if isinstance(layer, Labels) and layer.data.shape == labels.shape:  # a run before: its layer updated
            layer.data, layer.features = labels, features
        else:
            self.viewer.add_labels(labels, name=name, features=features, **kwargs)
        self.progress.value = self.progress.max
        self.status.value = f"{name}: {len(features)} nuclei"

    def _failed(self, exc):
        self.error = exc
        self.status.value = f"failed: {exc}"

    def _finished(self):
        self.worker = None
        self.button.enabled = True
