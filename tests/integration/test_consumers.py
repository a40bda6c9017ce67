"""Every output `segment` writes, opened by the tool that reads it, for a gray, an RGB and a
multichannel image, each with its pixel size in its own metadata (the `segmented_image` fixture:
user_images.py, TIFFs made from the committed real crops, segmented with every output): the
label TIFF's strips and resolution tags as ImageJ's own TIFF reader takes them (tifffile), the
measurements by pandas, the GeoJSON by geopandas and shapely, the ImageJ ROIs by roifile, the
OME-Zarr validated by ome-zarr-models, the overlay by Pillow. napari's readers open the labels
TIFF and the OME-Zarr in test_napari.py."""

import io
import json
import zipfile

import geopandas
import numpy as np
import pandas as pd
import pytest
import roifile
import shapely
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from user_images import non_decreasing_map

from nucleoflow.decode import open_bytes
from nucleoflow.formats import STRIP_MAX_SIDE, pyramid_strides, write_label_ome_tiff
from nucleoflow.outputs import OUTPUTS, NucleusOutputs, channel_planes
from nucleoflow.overlay import COLOUR

PIXEL_SIZE_UM = 0.5
CROWDED = "ae9f76b5360df3f6"  # gray fluorescence, 256 px, 73 nuclei (crops.csv)
EMPTY = "538b7673d507014d"  # gray fluorescence, 256 px, no nucleus


def crop(crops_zip, stem):
    """A committed crop as segment reads it (a RegionSource) and its uint32 instance labels."""
    with zipfile.ZipFile(crops_zip) as archive:
        source = open_bytes(archive.read(f"images/{stem}.png"), f"{stem}.png")
        labels = tifffile.imread(io.BytesIO(archive.read(f"labels/{stem}.tif"))).astype(np.uint32)
    return source, labels


def parts(geometry):
    """The polygons of a Polygon or MultiPolygon."""
    return list(getattr(geometry, "geoms", [geometry]))


def one_ring(geometry):
    """Whether a nucleus's geometry is one polygon without holes: its exterior is all of it."""
    polygons = parts(geometry)
    return len(polygons) == 1 and not polygons[0].interiors


def test_each_image_is_segmented_at_the_pixel_size_its_metadata_gives(segmented_image):
    image, summary, labels = segmented_image.image, segmented_image.summary, segmented_image.labels
    assert summary["pixel_size_um"] == pytest.approx(image.pixel_size_um) and summary["pixel_size_source"] == image.pixel_size_source
    assert labels.shape == image.pixels.shape[:2] and labels.dtype == np.uint32
    assert summary["nuclei"] == labels.max() > 10 and np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert sorted(p.name for p in segmented_image.out.iterdir()) == sorted(segmented_image.output(name).name for name in OUTPUTS)


def test_a_multichannel_image_is_segmented_on_the_channel_it_names(segment_user_image):
    """DAPI, the second channel, is the gray crop: the same nuclei as the gray image's (the
    first, a blur of it, would give others)."""
    multichannel, gray = segment_user_image("multichannel"), segment_user_image("gray")
    assert multichannel.image.channel == "DAPI"
    np.testing.assert_array_equal(multichannel.labels, gray.labels)


def test_label_tiff_is_strips_with_resolution_tags_as_imagej_reads_them(segmented_image):
    """ImageJ's own reader refuses tiles and BigTIFF, reads zlib strips and takes the pixel size
    from XResolution/YResolution and ResolutionUnit, never from the OME-XML."""
    size = segmented_image.image.pixel_size_um
    with tifffile.TiffFile(segmented_image.output("labels")) as tif:
        page = tif.pages[0]
        assert not tif.is_bigtiff and not page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert page.resolution == pytest.approx((1e4 / size, 1e4 / size), rel=1e-6)  # pixels per cm
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]  # what OME readers (Bio-Formats) take
        assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeY"]) == pytest.approx((size, size)) and pixels["PhysicalSizeXUnit"] == "µm"
        np.testing.assert_array_equal(page.asarray(), segmented_image.labels)


def test_a_label_tiff_without_a_pixel_size_claims_none(tmp_path, crops_zip):
    _, labels = crop(crops_zip, CROWDED)
    write_label_ome_tiff(tmp_path / "no_size.tif", [(0, labels)], labels.shape)
    with tifffile.TiffFile(tmp_path / "no_size.tif") as tif:
        assert tif.pages[0].resolutionunit == tifffile.RESUNIT.NONE


def test_label_tiff_above_the_strip_limit_is_tiled_with_resolution_on_every_level(tmp_path, crops_zip):
    """Wider than STRIP_MAX_SIDE: tiles, and each sub-resolution's tags give its own pixel size."""
    _, labels = crop(crops_zip, CROWDED)
    wide = np.tile(labels[:64], (1, -(-(STRIP_MAX_SIDE + 1) // labels.shape[1])))[:, : STRIP_MAX_SIDE + 1]
    write_label_ome_tiff(tmp_path / "wide.tif", [(0, wide)], wide.shape, PIXEL_SIZE_UM)
    with tifffile.TiffFile(tmp_path / "wide.tif") as tif:
        levels = tif.series[0].levels
        strides = [1, *pyramid_strides(wide.shape)]
        assert len(levels) == len(strides) > 1
        for level, stride in zip(levels, strides):
            page = level.keyframe
            assert page.is_tiled and page.resolutionunit == tifffile.RESUNIT.CENTIMETER
            assert page.resolution == pytest.approx((1e4 / PIXEL_SIZE_UM / stride,) * 2, rel=1e-6)
        np.testing.assert_array_equal(levels[0].asarray(), wide)


def test_measurements_are_a_row_per_nucleus_with_every_channel_by_its_name(segmented_image):
    """pandas reads one row per label of the labels TIFF: its pixel count, the mean of each of
    the file's channels (named as the file names them) over its pixels, areas in µm²."""
    image, labels = segmented_image.image, segmented_image.labels
    table = pd.read_csv(segmented_image.output("measurements"))
    ids = np.unique(labels)[1:]
    np.testing.assert_array_equal(table["label"], ids)
    np.testing.assert_array_equal(table["area"], np.bincount(labels.ravel())[ids])
    assert list(table.filter(like="mean_intensity_").columns) == [f"mean_intensity_{name}" for name in image.channel_names]
    for c, name in enumerate(image.channel_names):
        np.testing.assert_allclose(table[f"mean_intensity_{name}"], ndi.mean(image.pixels[..., c], labels, ids), rtol=1e-9)
    size = image.pixel_size_um
    np.testing.assert_allclose(table["area_um2"], table["area"] * size**2)
    np.testing.assert_allclose(table[["centroid_x_um", "centroid_y_um"]], table[["centroid_x", "centroid_y"]] * size)


def test_measurements_of_an_image_without_nuclei_are_a_header_pandas_reads(tmp_path, crops_zip):
    """The committed crop without nuclei gets a table with no rows and the columns a table with
    nuclei has (it was a 0-byte file: pandas raised EmptyDataError)."""
    source, none = crop(crops_zip, EMPTY)
    _, some = crop(crops_zip, CROWDED)  # the same size: its nuclei measured on the empty crop's pixels
    assert not none.any() and some.max() > 0
    tables = {}
    for name, labels in (("none", none), ("some", some)):
        path = tmp_path / f"{name}.csv"
        nuclei = NucleusOutputs({"measurements": path}, channel_planes(source), list(source.channel_names), PIXEL_SIZE_UM)
        if labels.any():  # as segment: a block without nuclei hands over none
            nuclei.on_block(labels, (0, 0))
        nuclei.close()
        tables[name] = pd.read_csv(path)
    assert len(tables["none"]) == 0 and len(tables["some"]) == some.max()
    assert list(tables["none"].columns) == list(tables["some"].columns)
    assert {"label", "centroid_x", "area", "mean_intensity_0", "area_um2"} <= set(tables["none"].columns)


def read_geojson(path):
    """geopandas' reading of a GeoJSON output. GDAL gives any GeoJSON longitude and latitude
    (EPSG:4326, as RFC 7946 says); these are pixel coordinates: no CRS."""
    frame = geopandas.read_file(path)
    assert frame.crs == "EPSG:4326"
    return frame.set_crs(None, allow_override=True)


def test_geojson_opens_in_geopandas_with_valid_polygons_that_are_the_nuclei(segmented_image):
    """geopandas reads a QuPath detection per nucleus, in pixel coordinates (corners at
    integers); shapely finds each polygon valid, its area the nucleus's pixel count, and the
    pixel centres it contains exactly the nucleus's pixels (holes left out)."""
    labels = segmented_image.labels
    frame = read_geojson(segmented_image.output("geojson"))
    table = pd.read_csv(segmented_image.output("measurements"))
    np.testing.assert_array_equal(frame["label"], table["label"])
    assert (frame["objectType"] == "detection").all() and frame.geometry.is_valid.all()
    np.testing.assert_array_equal(frame.geometry.area, table["area"])
    x0, y0, x1, y1 = frame.total_bounds
    assert 0 <= x0 and 0 <= y0 and x1 <= labels.shape[1] and y1 <= labels.shape[0]
    boxes = ndi.find_objects(labels)
    for label, geometry in zip(frame["label"], frame.geometry):
        box = boxes[label - 1]
        ys, xs = np.mgrid[box] + 0.5
        np.testing.assert_array_equal(shapely.contains_xy(geometry, xs, ys), labels[box] == label, err_msg=str(label))


def test_geojson_exteriors_wind_counter_clockwise_and_holes_clockwise(tmp_path, crops_zip):
    """RFC 7946 on the coordinates as written (x right, y down; shapely's is_ccw judges them as
    they are): every exterior of a real crop's nuclei counter-clockwise, every hole clockwise;
    its largest nucleus gets a hole."""
    source, labels = crop(crops_zip, CROWDED)
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    depth = ndi.distance_transform_edt(labels == largest)
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    assert depth[y, x] >= 2  # all 8 neighbours are the nucleus: a 1-pixel hole
    labels[y, x] = 0
    nuclei = NucleusOutputs({"geojson": tmp_path / "crop.geojson"}, channel_planes(source), list(source.channel_names))
    nuclei.on_block(labels, (0, 0))
    nuclei.close()
    features = json.loads((tmp_path / "crop.geojson").read_text())["features"]
    assert len(features) == labels.max()
    holes = 0
    for feature in features:
        for polygon in parts(shapely.geometry.shape(feature["geometry"])):
            assert polygon.exterior.is_ccw, feature["properties"]["label"]
            assert not any(ring.is_ccw for ring in polygon.interiors), feature["properties"]["label"]
            holes += len(polygon.interiors)
    assert holes >= 1


def test_imagej_rois_open_in_roifile_as_each_nucleus_outline(segmented_image):
    """roifile reads one traced polygon per nucleus, named by its label, in pixel coordinates:
    the exterior of one of its GeoJSON polygons (an ImageJ polygon has one ring), so for a
    nucleus of one part without holes its area is the nucleus's pixel count."""
    rois = roifile.roiread(segmented_image.output("imagej_rois"))
    frame = read_geojson(segmented_image.output("geojson"))
    assert [roi.name for roi in rois] == [str(label) for label in frame["label"]]
    whole = 0
    for roi, geometry in zip(rois, frame.geometry):
        assert roi.roitype == roifile.ROI_TYPE.TRACED
        outline = shapely.Polygon(roi.coordinates())
        assert any(outline.equals(shapely.Polygon(part.exterior)) for part in parts(geometry)), roi.name
        if one_ring(geometry):
            assert outline.area == geometry.area
            whole += 1
    assert whole > 0.9 * len(rois)


def test_csv_centroids_geojson_and_imagej_rois_share_one_pixel_convention(segmented_image):
    """Pixel corners at integers, a pixel's centre at +0.5: every nucleus's CSV centroid (pandas)
    is the area centroid of its GeoJSON polygons and of its ImageJ ROI (shapely); it sat 0.5 px
    off when the CSV put pixel centres at integers."""
    table = pd.read_csv(segmented_image.output("measurements")).set_index("label")
    rois = {int(roi.name): roi for roi in roifile.roiread(segmented_image.output("imagej_rois"))}
    frame = read_geojson(segmented_image.output("geojson"))
    assert len(table) == len(rois) == len(frame) == segmented_image.labels.max()
    with_roi = 0
    for label, geometry in zip(frame["label"], frame.geometry):
        expected = table.loc[label, ["centroid_x", "centroid_y"]].to_numpy(float)
        np.testing.assert_allclose(geometry.centroid.coords[0], expected, atol=1e-6, err_msg=str(label))
        if one_ring(geometry):  # an ImageJ ROI holds the exterior alone
            np.testing.assert_allclose(shapely.Polygon(rois[label].coordinates()).centroid.coords[0], expected, atol=1e-6, err_msg=str(label))
            with_roi += 1
    assert with_roi > 0.9 * len(frame)


def test_ome_zarr_is_valid_ngff_with_the_pixel_size_and_a_colour_and_window_for_every_channel(segmented_image):
    """ome-zarr-models validates NGFF 0.4 (omero channels need `color` and `window`): the image's
    channels by their names, at the pixel size in micrometres, its labels those of the TIFF."""
    import zarr
    from ome_zarr_models.v04.image import Image as NgffImage
    from ome_zarr_models.v04.image_label import ImageLabel

    image, size = segmented_image.image, segmented_image.image.pixel_size_um
    root = zarr.open_group(str(segmented_image.output("ome_zarr")), mode="r", zarr_format=2)
    attributes = NgffImage.from_zarr(root).attributes  # raises a ValidationError on a channel without colour or window
    nuclei = ImageLabel.from_zarr(root["labels/nuclei"]).attributes
    channels = attributes.omero.channels
    assert [c.label for c in channels] == image.channel_names
    assert [c.color for c in channels] == (["FFFFFF"] if len(channels) == 1 else ["FF0000", "00FF00", "0000FF"][: len(channels)])
    for c, channel in enumerate(channels):
        plane = image.pixels[..., c]
        assert (channel.window.start, channel.window.end) == (float(plane.min()), float(plane.max()))
        assert channel.window.min <= channel.window.start < channel.window.end <= channel.window.max
    picture, labels = attributes.multiscales[0], nuclei.multiscales[0]
    assert [axis.unit for axis in picture.axes] == [None, "micrometer", "micrometer"]
    assert [axis.unit for axis in labels.axes] == ["micrometer", "micrometer"]
    assert list(picture.datasets[0].coordinateTransformations[0].scale) == pytest.approx([1.0, size, size])
    assert list(labels.datasets[0].coordinateTransformations[0].scale) == pytest.approx([size, size])
    np.testing.assert_array_equal(root[picture.datasets[0].path][...], np.moveaxis(image.pixels, -1, 0))
    np.testing.assert_array_equal(root["labels/nuclei"][labels.datasets[0].path][...], segmented_image.labels)


def test_overlay_opens_as_the_image_with_every_nucleus_outlined(segmented_image):
    """Pillow opens an 8-bit RGB PNG of the image's size: yellow outlines on the nuclei's edges,
    every nucleus outlined, and elsewhere the channels the network saw (the nuclear one of the
    multichannel image), each an increasing map of its own values."""
    image, labels = segmented_image.image, segmented_image.labels
    with Image.open(segmented_image.output("overlay")) as png:
        assert png.format == "PNG" and png.mode == "RGB" and png.size == labels.shape[::-1]
        rgb = np.asarray(png)
    outline = (rgb == COLOUR).all(axis=-1)
    assert not outline[labels == 0].any() and set(np.unique(labels[outline])) == set(np.unique(labels)[1:])
    assert outline.sum() < 0.8 * (labels > 0).sum()  # outlines, not filled nuclei
    shown = image.nuclear * 3 if len(image.nuclear) == 1 else image.nuclear
    for c, channel in enumerate(shown):
        values, drawn = image.pixels[..., channel][~outline], rgb[..., c][~outline]
        assert non_decreasing_map(values, drawn) and len(np.unique(drawn)) > 10, (c, channel)  # shown, not a flat colour
