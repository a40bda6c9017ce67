"""The napari plugin (src/nucleoflow/napari.yaml, napari_plugin.py): the Segment nuclei widget on a
committed crop in a real viewer, the reader on segment's outputs; and segment's OME-Zarr and
labels TIFF of a gray, an RGB and a multichannel image (user_images.py) opened by napari's
readers, napari-ome-zarr's and napari's own.

Needs the `napari` extra (skipped without it) and, for the tests that open a viewer, a display:
.ci/run runs this file under xvfb-run (`-m napari`).
"""

import os
import tomllib
import zipfile
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import ROOT
from scipy import ndimage as ndi
from user_images import non_decreasing_map

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from npe2 import PluginManifest  # noqa: E402

from nucleoflow.decode import decode_image  # noqa: E402
from nucleoflow.formats import write_label_ome_tiff  # noqa: E402
from nucleoflow.napari_plugin import MODEL_FILE, SegmentWidget, get_reader, read_labels  # noqa: E402
from nucleoflow.segment import Segmenter  # noqa: E402
from nucleoflow.shipped import model_path  # noqa: E402

pytestmark = pytest.mark.napari

MANIFEST = ROOT / "src" / "nucleoflow" / "napari.yaml"
SHIPPED = model_path("dsb2018_unet")
needs_display = pytest.mark.skipif(
    not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")), reason="opens a napari viewer: needs a display (run under xvfb-run, as .ci/run does)"
)


@pytest.fixture(scope="module")
def crop(crops_zip):
    """(stem, PNG bytes, (H, W) uint8 pixels) of the most crowded committed crop (73 nuclei)."""
    stem = pd.read_csv(crops_zip.parent / "crops.csv").sort_values("n_nuclei", ascending=False)["stem"].iloc[0]
    with zipfile.ZipFile(crops_zip) as archive:
        png = archive.read(f"images/{stem}.png")
    return stem, png, decode_image(png, f"{stem}.png")[..., 0]


@pytest.fixture(scope="module")
def reference():
    """nucleoflow's own Segmenter with the options the widget is given below."""
    return Segmenter(SHIPPED, threads=1, tta=False)


@pytest.fixture
def viewer(npe2pm, make_napari_viewer):
    """A shown viewer (it renders under Xvfb; show=False gives black screenshots) with this
    plugin registered from its manifest (npe2pm: no other plugin is discovered)."""
    with npe2pm.tmp_plugin(manifest=str(MANIFEST)):
        yield make_napari_viewer(show=True)


@pytest.fixture
def readers_viewer(npe2pm, make_napari_viewer):
    """A shown viewer with the readers a user has beside this plugin: napari-ome-zarr's (the
    napari extra installs it) and napari's own (builtins)."""
    with npe2pm.tmp_plugin(manifest=str(MANIFEST)), npe2pm.tmp_plugin(package="napari-ome-zarr"), npe2pm.tmp_plugin(package="napari"):
        yield make_napari_viewer(show=True)


def test_manifest_is_valid_and_installed_with_the_package():
    manifest = PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()  # every python_name imports
    assert manifest.name == "nucleoflow"
    assert [w.display_name for w in manifest.contributions.widgets] == ["Segment nuclei"]
    assert {"*.tif", "*.tiff", "*.csv"} == set(manifest.contributions.readers[0].filename_patterns)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["napari.manifest"] == {"nucleoflow": "nucleoflow:napari.yaml"}
    assert "napari.yaml" in project["tool"]["setuptools"]["package-data"]["nucleoflow"]
    assert not any("napari" in req for req in project["project"]["optional-dependencies"]["test"])
    installed = metadata.distribution("nucleoflow").entry_points.select(group="napari.manifest")
    if installed:  # installed from a tree with this entry point (CI): napari discovers the plugin
        assert PluginManifest.from_distribution("nucleoflow").name == "nucleoflow"


def _canvas_pixel(viewer, shot, world):
    """(row, column) of the screenshot where the world point (y, x) is drawn (2D camera)."""
    height, width = viewer.canvas.size
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari 0.9 moved it
    cy, cx = camera.center[-2:]
    ratio = shot.shape[0] / height  # device pixels per canvas pixel
    zoom = camera.zoom
    return round(((world[0] - cy) * zoom + height / 2) * ratio), round(((world[1] - cx) * zoom + width / 2) * ratio)


def assert_labels_drawn(viewer, layer, labels, size):
    """A screenshot of the Labels `layer` alone (the caller hides the others), opaque, shows each
    nucleus of `labels` ((H, W), `size` world units a pixel) in its own colour at its deepest
    pixel, and the canvas background at the pixel farthest from any nucleus."""
    layer.visible, layer.opacity = True, 1.0
    shot = viewer.screenshot(canvas_only=True, flash=False)
    background = shot[2, 2, :3].astype(int)  # a corner of the canvas, outside the image
    depth = ndi.distance_transform_edt(labels)
    checked = 0
    for label in np.unique(labels)[1:]:
        inside = np.where(labels == label, depth, 0)
        if inside.max() < 3:
            continue
        y, x = np.unravel_index(inside.argmax(), inside.shape)  # the nucleus's deepest pixel
        row, col = _canvas_pixel(viewer, shot, (y * size, x * size))
        colour = np.asarray(layer.get_color(label)).reshape(-1)[:3] * 255
        assert np.abs(shot[row, col, :3] - colour).max() <= 12, (label, shot[row, col], colour)
        checked += 1
    assert checked >= 10
    gap = ndi.distance_transform_edt(labels == 0)
    y, x = np.unravel_index(gap.argmax(), gap.shape)  # the pixel farthest from any nucleus
    row, col = _canvas_pixel(viewer, shot, (y * size, x * size))
    assert np.abs(shot[row, col, :3].astype(int) - background).max() <= 2


@needs_display
def test_widget_segments_the_image_layer_like_segmenter(viewer, qtbot, crop, reference):
    stem, _, image = crop
    viewer.add_image(image, name=stem, scale=(0.25, 0.25), units=("micrometer", "micrometer"))
    _, widget = viewer.window.add_plugin_dock_widget("nucleoflow", "Segment nuclei")
    assert isinstance(widget, SegmentWidget)
    qtbot.waitUntil(widget.native.isVisible)  # docked and shown
    assert widget.image.value.name == stem and widget.model.value == "dsb2018_unet"
    assert MODEL_FILE in widget.model.choices and not widget.model_file.visible
    widget.tta.value, widget.threads.value = False, 1

    widget.button.native.click()  # as a person does: the worker starts, the viewer stays responsive
    assert widget.busy and not widget.button.enabled
    qtbot.waitUntil(lambda: not widget.busy, timeout=300_000)
    assert widget.error is None, widget.status.value

    labels = viewer.layers[f"{stem} nuclei"]
    ids = np.unique(labels.data)[1:]
    expected = reference(image)
    assert len(ids) > 0
    assert len(ids) == len(np.unique(expected)) - 1  # nucleoflow's count on the same image
    assert (labels.data == expected).mean() > 0.99
    assert tuple(labels.scale) == (0.25, 0.25)
    assert widget.status.value == f"{stem} nuclei: {len(ids)} nuclei"
    done, total = widget.last_progress  # the tiles counted, as the worker reported them
    assert done == total >= 1 and widget.progress.value == widget.progress.max

    features = labels.features
    assert len(features) == len(ids) and sorted(features["label"]) == list(ids)
    assert (features["index"] == features["label"]).all()  # napari's label -> row mapping
    assert np.allclose(features["area_um2"], features["area"] * 0.25**2)  # the layer's pixel size
    row = features.set_index("label").loc[ids[0]]
    assert row["area"] == (labels.data == ids[0]).sum()

    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot[..., :3].std() > 10  # not blank: the crop and its labels drawn
    assert len(np.unique(shot[..., :3].reshape(-1, 3), axis=0)) > 100

    viewer.layers[stem].visible = False
    assert_labels_drawn(viewer, labels, labels.data, 0.25)


@needs_display
def test_widget_says_what_is_wrong_before_running(viewer, qtbot, crop):
    stem, _, image = crop
    viewer.add_image(image, name=stem)
    _, widget = viewer.window.add_plugin_dock_widget("nucleoflow", "Segment nuclei")
    qtbot.waitUntil(widget.native.isVisible)
    widget.channel.value = "5"
    assert widget.run() is None and not widget.busy
    assert "has no channel 5" in widget.status.value
    widget.channel.value, widget.seed_threshold.value = "", "1.5"
    assert widget.run() is None
    assert "seed threshold '1.5'" in widget.status.value
    widget.seed_threshold.value, widget.model.value = "", MODEL_FILE
    assert widget.model_file.visible
    assert widget.run() is None and "model.pt" in widget.status.value


@needs_display
def test_reader_opens_segment_outputs_with_their_pixel_size(viewer, tmp_path, crop, reference):
    stem, png, _ = crop
    (tmp_path / f"{stem}.png").write_bytes(png)
    out = tmp_path / "out"
    summary = reference.to_files(tmp_path / f"{stem}.png", out, ["labels", "measurements"], pixel_size_um=0.5)
    tif, csv = out / f"{stem}.tif", out / f"{stem}.csv"

    layers = viewer.open(tif, plugin="nucleoflow")
    assert len(layers) == 1 and isinstance(layers[0], napari.layers.Labels)
    layer = layers[0]
    assert layer.name == stem
    assert tuple(layer.scale) == (0.5, 0.5)  # the TIFF's pixel size
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert np.array_equal(layer.data, tifffile.imread(tif))
    table = pd.read_csv(csv)
    assert len(layer.features) == summary["nuclei"] == len(table) > 0  # the CSV beside it as features
    assert list(layer.features["label"]) == list(table["label"]) == list(layer.features["index"])

    again = viewer.open(csv, plugin="nucleoflow")  # the CSV opens the pair as well
    assert np.array_equal(again[0].data, layer.data) and len(again[0].features) == len(table)

    tifffile.imwrite(tmp_path / "gray.tif", np.zeros((64, 64), np.uint16))
    for other in (tmp_path / f"{stem}.png", tmp_path / "gray.tif", out / "summary.csv"):
        assert get_reader(str(other)) is None  # left to napari's own readers


def test_reader_opens_a_pyramidal_labels_tiff_as_multiscale(tmp_path):
    labels = np.zeros((2000, 1100), np.uint32)  # over formats.PYRAMID_MIN: one sub-resolution
    labels[100:140, 200:260], labels[1900:1990, 1000:1090] = 1, 2
    write_label_ome_tiff(tmp_path / "big.tif", [(0, labels)], labels.shape, pixel_size_um=0.325)
    (data, kwargs, kind), *more = get_reader(str(tmp_path / "big.tif"))(str(tmp_path / "big.tif"))
    assert kind == "labels" and not more
    assert kwargs["multiscale"] and [level.shape for level in data] == [(2000, 1100), (1000, 550)]
    assert np.array_equal(data[0][:], labels) and np.array_equal(data[1][:], labels[::2, ::2])
    assert kwargs["scale"] == (0.325, 0.325) and "features" not in kwargs
    assert read_labels(tmp_path / "big.tif")[0][1]["name"] == "big"


def full_resolution(layer):
    """A layer's data at full resolution, as an array (a multiscale layer's first level)."""
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


@needs_display
def test_napari_ome_zarr_opens_the_ome_zarr_with_its_labels_over_the_nuclei(readers_viewer, segmented_image):
    """napari-ome-zarr opens a layer per channel, named by it, and the labels, all at the pixel
    size in micrometres; on screen each channel is drawn where its pixels are (its colour an
    increasing map of their values at the centre of 256 pixels), the labels over the nuclei."""
    viewer, image, size = readers_viewer, segmented_image.image, segmented_image.image.pixel_size_um
    layers = viewer.open(segmented_image.output("ome_zarr"), plugin="napari-ome-zarr")
    channels = [layer for layer in layers if isinstance(layer, napari.layers.Image)]
    nuclei = [layer for layer in layers if isinstance(layer, napari.layers.Labels)]
    assert len(nuclei) == 1 and len(layers) == len(channels) + 1
    assert [layer.name for layer in channels] == [f"{segmented_image.stem}: {name}" for name in image.channel_names]
    for layer in [*channels, *nuclei]:
        assert tuple(layer.scale) == pytest.approx((size, size)) and [str(u) for u in layer.units] == ["micrometer", "micrometer"]
        assert tuple(layer.translate) == (0.0, 0.0)
    for c, layer in enumerate(channels):
        np.testing.assert_array_equal(full_resolution(layer), image.pixels[..., c])
    labels = nuclei[0]
    np.testing.assert_array_equal(full_resolution(labels), segmented_image.labels)

    labels.visible = False  # napari-ome-zarr shows the channels first
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    ys, xs = (np.linspace(0, n - 1, 16).round().astype(int) for n in segmented_image.labels.shape)
    ys, xs = (grid.ravel() for grid in np.meshgrid(ys, xs, indexing="ij"))
    drawn = np.array([shot[_canvas_pixel(viewer, shot, (y * size, x * size))][:3] for y, x in zip(ys, xs)])
    for c in range(len(channels)):  # gray: white; two or three channels: red, green, blue
        assert non_decreasing_map(image.pixels[ys, xs, c], drawn[:, 0 if len(channels) == 1 else c]), c
        assert drawn[:, 0 if len(channels) == 1 else c].std() > 10

    for layer in channels:
        layer.visible = False
    assert_labels_drawn(viewer, labels, segmented_image.labels, size)


@needs_display
def test_the_labels_tiff_keeps_its_pixel_size_in_nucleoflows_reader_not_naparis_own(readers_viewer, segmented_image):
    """napari's own reader (imageio) reads a TIFF's pixels only: the labels open as labels (napari
    takes 32-bit integers for labels) at one world unit a pixel. nucleoflow's reader opens them at
    the pixel size the input image's metadata gave (ImageJ's calibration, TIFF resolution, OME)."""
    path, size = segmented_image.output("labels"), segmented_image.image.pixel_size_um
    (own,) = readers_viewer.open(path, plugin="napari")
    assert isinstance(own, napari.layers.Labels) and tuple(own.scale) == (1.0, 1.0)
    np.testing.assert_array_equal(full_resolution(own), segmented_image.labels)
    (labels,) = readers_viewer.open(path, plugin="nucleoflow")
    assert isinstance(labels, napari.layers.Labels) and tuple(labels.scale) == pytest.approx((size, size))
    np.testing.assert_array_equal(full_resolution(labels), segmented_image.labels)
    assert len(labels.features) == segmented_image.summary["nuclei"]  # the measurements beside it
