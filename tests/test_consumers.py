"""Every output read as the tools that open it read it, on the committed real crops (.test/data):
the OME-Zarr validated by ome-zarr-models and read by ome-zarr's reader (napari-ome-zarr's), the
label TIFF's strips and resolution tags as ImageJ's own TIFF reader takes them (tifffile), the
measurement CSVs by pandas, GeoJSON rings by their signed area as RFC 7946 judges them (shapely is
not installed: its orient/is_ccw would judge the same shoelace sign), ImageJ ROIs by roifile."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import roifile
import tifffile
from scipy import ndimage as ndi

from nucleoflow.formats import STRIP_MAX_SIDE, pyramid_strides, write_label_ome_tiff, write_ome_zarr
from nucleoflow.outputs import NucleusOutputs, channel_planes
from nucleoflow.reader import open_bytes

PIXEL_SIZE_UM = 0.5
CROWDED = "ae9f76b5360df3f6"  # gray fluorescence, 256 px, 73 nuclei (crops.csv)
HISTOLOGY = "65c8527c16a01619"  # RGB histology, 176 px, 41 nuclei
EMPTY = "538b7673d507014d"  # gray fluorescence, 256 px, no nucleus


def crop(crops_zip, stem):
    """A committed crop as segment reads it (a RegionSource) and its uint32 instance labels."""
    with zipfile.ZipFile(crops_zip) as archive:
        source = open_bytes(archive.read(f"images/{stem}.png"), f"{stem}.png")
        labels = tifffile.imread(io.BytesIO(archive.read(f"labels/{stem}.tif"))).astype(np.uint32)
    return source, labels


def moments(ring):
    """(signed area, x moment, y moment) of a ring of (x, y), closed or not (shoelace): the area
    positive counter-clockwise, as RFC 7946 counts."""
    x, y = np.asarray(ring, float).T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    return cross.sum() / 2, ((x + x1) * cross).sum() / 6, ((y + y1) * cross).sum() / 6


def signed_area(ring):
    return moments(ring)[0]


def centroid(rings):
    """(x, y) area centroid of rings whose winding signs their area (holes subtract)."""
    area, mx, my = np.sum([moments(ring) for ring in rings], axis=0)
    return mx / area, my / area


def test_label_tiff_is_strips_with_resolution_tags_as_imagej_reads_them(tmp_path, crops_zip):
    """ImageJ's own reader refuses tiles and BigTIFF, reads zlib strips and takes the pixel size
    from XResolution/YResolution and ResolutionUnit, never from the OME-XML."""
    _, labels = crop(crops_zip, CROWDED)
    write_label_ome_tiff(tmp_path / "labels.tif", [(0, labels)], labels.shape, PIXEL_SIZE_UM)
    write_label_ome_tiff(tmp_path / "no_size.tif", [(0, labels)], labels.shape)
    with tifffile.TiffFile(tmp_path / "labels.tif") as tif:
        page = tif.pages[0]
        assert not tif.is_bigtiff and not page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert page.resolution == pytest.approx((1e4 / PIXEL_SIZE_UM, 1e4 / PIXEL_SIZE_UM), rel=1e-6)  # pixels per cm
        np.testing.assert_array_equal(page.asarray(), labels)
    with tifffile.TiffFile(tmp_path / "no_size.tif") as tif:
        assert tif.pages[0].resolutionunit == tifffile.RESUNIT.NONE  # no size known: none claimed


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


@pytest.mark.parametrize("stem", [CROWDED, HISTOLOGY], ids=["gray", "rgb"])
def test_ome_zarr_is_valid_ngff_with_a_colour_and_window_for_every_channel(tmp_path, crops_zip, stem):
    """ome-zarr-models validates NGFF 0.4 (omero channels need `color` and `window`); ome-zarr's
    reader, napari-ome-zarr's, then gives napari one colormap and contrast limits per channel."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v04.image import Image
    from ome_zarr_models.v04.image_label import ImageLabel

    source, labels = crop(crops_zip, stem)
    write_label_ome_tiff(tmp_path / "labels.tif", [(0, labels)], labels.shape, PIXEL_SIZE_UM)
    write_ome_zarr(tmp_path / "crop.ome.zarr", channel_planes(source), list(source.channel_names), tmp_path / "labels.tif", PIXEL_SIZE_UM)
    root = zarr.open_group(str(tmp_path / "crop.ome.zarr"), mode="r", zarr_format=2)
    channels = Image.from_zarr(root).attributes.omero.channels  # raises a ValidationError on a channel without them
    ImageLabel.from_zarr(root["labels/nuclei"])
    assert len(channels) == source.channels
    assert [c.color for c in channels] == (["FFFFFF"] if source.channels == 1 else ["FF0000", "00FF00", "0000FF"])
    pixels = source.read_channels(0, source.height, 0, source.width)  # a crop is its own coarsest level
    for c, channel in enumerate(channels):
        assert (channel.window.start, channel.window.end) == (float(pixels[..., c].min()), float(pixels[..., c].max()))
        assert channel.window.min <= channel.window.start < channel.window.end <= channel.window.max
    image = next(iter(Reader(parse_url(tmp_path / "crop.ome.zarr"))()))
    assert len(image.metadata["colormap"]) == len(image.metadata["contrast_limits"]) == source.channels


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


def test_geojson_exteriors_wind_counter_clockwise_and_holes_clockwise(tmp_path, crops_zip):
    """RFC 7946 on the coordinates as written (x right, y down): every exterior of a real crop's
    nuclei has positive signed area, every hole negative; its largest nucleus gets a hole."""
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
        geometry, label = feature["geometry"], feature["properties"]["label"]
        for exterior, *inner in [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]:
            assert signed_area(exterior) > 0, label
            assert all(signed_area(ring) < 0 for ring in inner), label
            holes += len(inner)
    assert holes >= 1


def test_csv_centroids_geojson_and_imagej_rois_share_one_pixel_convention(tmp_path, crops_zip):
    """Pixel corners at integers, a pixel's centre at +0.5: every nucleus's CSV centroid (pandas)
    is the area centroid of its GeoJSON polygons and of its ImageJ ROI (roifile); it sat 0.5 px
    off when the CSV put pixel centres at integers."""
    source, labels = crop(crops_zip, CROWDED)
    paths = {"measurements": tmp_path / "crop.csv", "geojson": tmp_path / "crop.geojson", "imagej_rois": tmp_path / "crop.rois.zip"}
    nuclei = NucleusOutputs(paths, channel_planes(source), list(source.channel_names), PIXEL_SIZE_UM)
    nuclei.on_block(labels, (0, 0))
    nuclei.close()
    table = pd.read_csv(paths["measurements"]).set_index("label")
    rois = {int(roi.name): roi for roi in roifile.roiread(paths["imagej_rois"])}
    features = json.loads(paths["geojson"].read_text())["features"]
    assert len(table) == len(rois) == len(features) == labels.max()
    with_roi = 0
    for feature in features:
        label, geometry = feature["properties"]["label"], feature["geometry"]
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        expected = table.loc[label, ["centroid_x", "centroid_y"]].to_numpy(float)
        np.testing.assert_allclose(centroid([ring for polygon in polygons for ring in polygon]), expected, atol=1e-6, err_msg=str(label))
        if len(polygons) == 1 and len(polygons[0]) == 1:  # an ImageJ ROI holds the exterior alone
            np.testing.assert_allclose(centroid([rois[label].coordinates()]), expected, atol=1e-6, err_msg=str(label))
            with_roi += 1
    assert with_roi > 0.9 * len(features)
