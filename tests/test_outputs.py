"""segment's outputs: measurements, QuPath GeoJSON, ImageJ ROIs, pyramidal OME-TIFF and OME-Zarr."""

import contextlib
import csv
import json
import logging
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import roifile
import tifffile
from PIL import Image
from skimage.draw import polygon2mask
from test_blocks import EncodedProbabilities, encoded_image, many_discs, tiling

from nucleoflow.blocks import label_bands
from nucleoflow.decode import decode_image
from nucleoflow.errors import InputError
from nucleoflow.formats import write_label_ome_tiff, write_ome_zarr
from nucleoflow.measure import measure
from nucleoflow.options import Thresholds
from nucleoflow.outputs import OUTPUTS, NucleusOutputs, channel_planes, output_name
from nucleoflow.region import RegionSource
from nucleoflow.segment import Segmenter, gather_shards, segment_folder, segment_images

NAMES = ["background", "interior", "border"]  # what the encoded images' channels hold


def rasterise(rings, shape):
    """Pixels whose centre (x + 0.5, y + 0.5) lies inside the polygon (exterior minus holes)."""
    mask = polygon2mask(shape, np.asarray(rings[0], float)[:, ::-1] - 0.5)
    for hole in rings[1:]:
        mask &= ~polygon2mask(shape, np.asarray(hole, float)[:, ::-1] - 0.5)
    return mask


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture(scope="module")
def blockwise(tmp_path_factory):
    """Discs labelled in 256 px blocks with every per-nucleus output, and the label image."""
    tmp = tmp_path_factory.mktemp("blockwise")
    image = encoded_image(many_discs((900, 700)))
    source = RegionSource(image, "discs")
    paths = {"measurements": tmp / "discs.csv", "geojson": tmp / "discs.geojson", "imagej_rois": tmp / "discs.rois.zip", "labels": tmp / "discs.tif"}
    nuclei = NucleusOutputs(paths, channel_planes(source), NAMES, pixel_size_um=0.325)
    bands = label_bands(source, EncodedProbabilities(), tiling(block=256, context=40), Thresholds(min_area=1), on_block=nuclei.on_block)
    write_label_ome_tiff(paths["labels"], bands, image.shape[:2], 0.325)
    nuclei.close()
    return image, tifffile.imread(paths["labels"]), paths, nuclei


def test_blockwise_measurements_equal_whole_image_measurements(blockwise):
    image, labels, paths, nuclei = blockwise
    table = pd.read_csv(paths["measurements"])
    assert len(table) == labels.max() > 500  # one row per nucleus
    assert table["label"].tolist() == list(range(1, labels.max() + 1))
    np.testing.assert_array_equal(table["area"], np.bincount(labels.ravel())[1:])  # areas are pixel counts
    whole = measure(labels, image, channel_names=NAMES, pixel_size_um=0.325)
    pd.testing.assert_frame_equal(table, whole, check_dtype=False, rtol=1e-9)
    expected = {"centroid_y", "centroid_x", "perimeter", "eccentricity", "solidity", "major_axis_length", "minor_axis_length", "orientation"}
    assert expected | {f"mean_intensity_{n}" for n in NAMES} <= set(table.columns)
    np.testing.assert_allclose(table["area_um2"], table["area"] * 0.325**2)
    np.testing.assert_allclose(table["centroid_x_um"], table["centroid_x"] * 0.325)
    # Channel means are the image's: the interior channel is 255 inside the disc cores.
    assert table["mean_intensity_interior"].median() > 200 > table["mean_intensity_background"].median()
    assert nuclei.summary() == {"nuclei": len(table), "median_area": float(table["area"].median()), "median_area_um2": float(table["area"].median()) * 0.325**2}


def test_geojson_detections_cover_their_nucleus(blockwise):
    _, labels, paths, _ = blockwise
    collection = json.loads(paths["geojson"].read_text())
    features = collection["features"]
    assert collection["type"] == "FeatureCollection" and len(features) == labels.max()
    ious = []
    for feature in features:
        props = feature["properties"]
        assert props["objectType"] == "detection" and feature["geometry"]["type"] == "Polygon"
        mask = labels == props["label"]
        assert props["measurements"]["area"] == mask.sum()
        ious.append(iou(rasterise(feature["geometry"]["coordinates"], labels.shape), mask))
    assert min(ious) >= 0.95 and np.mean(ious) == 1.0  # pixel edges: rasterised back exactly


def test_imagej_rois_cover_their_nucleus(blockwise):
    _, labels, paths, _ = blockwise
    rois = roifile.roiread(paths["imagej_rois"])
    assert [roi.name for roi in rois] == [str(n) for n in range(1, labels.max() + 1)]
    with zipfile.ZipFile(paths["imagej_rois"]) as archive:  # Fiji's RoiManager reads <name>.roi entries
        assert archive.namelist()[0] == "1.roi"
    for roi in rois:
        assert roi.roitype == roifile.ROI_TYPE.TRACED
        mask = labels == int(roi.name)
        assert iou(rasterise([roi.coordinates()], labels.shape), mask) >= 0.95


def ome_pixel_size(tif):
    pixels = ET.fromstring(tif.ome_metadata).find(".//{*}Pixels")
    return float(pixels.get("PhysicalSizeX")), float(pixels.get("PhysicalSizeY")), pixels.get("PhysicalSizeXUnit")


def test_label_ome_tiff_is_pyramidal_with_the_pixel_size(tmp_path):
    labels = np.random.default_rng(0).integers(0, 2**32 - 1, (2100, 1100), dtype=np.uint32)
    bands = ((top, labels[top : top + 512]) for top in range(0, 2100, 512))
    write_label_ome_tiff(tmp_path / "big.tif", bands, labels.shape, 0.5)
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        assert tif.is_ome and ome_pixel_size(tif) == (0.5, 0.5, "µm")
        levels = tif.series[0].levels
        assert [level.shape for level in levels] == [(2100, 1100), (1050, 550), (525, 275)]
        assert not any(level.keyframe.is_tiled for level in levels)  # strips: 2100 px <= formats.STRIP_MAX_SIDE
        for level, stride in zip(levels, (1, 2, 4)):
            np.testing.assert_array_equal(level.asarray(), labels[::stride, ::stride])  # nearest neighbour
    assert not [p for p in tmp_path.iterdir() if p.name != "big.tif"]  # its scratch levels are gone


def test_ome_zarr_reads_back_with_labels_and_pixel_size(tmp_path, blockwise):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image, labels, paths, _ = blockwise
    write_ome_zarr(tmp_path / "discs.ome.zarr", channel_planes(RegionSource(image, "discs")), NAMES, paths["labels"], 0.325)
    nodes = list(Reader(parse_url(tmp_path / "discs.ome.zarr"))())
    picture, nuclei = nodes[0], next(n for n in nodes if n.metadata.get("name") == "nuclei")
    np.testing.assert_array_equal(np.asarray(picture.data[0]), image.transpose(2, 0, 1))
    np.testing.assert_array_equal(np.asarray(nuclei.data[0]), labels)
    assert picture.metadata["channel_names"] == NAMES
    scale = nuclei.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == [0.325, 0.325] and nuclei.metadata["axes"][0]["unit"] == "micrometer"


@pytest.fixture(scope="module")
def real_images(tmp_path_factory, crops_zip):
    """A gray and an RGB crop of real DSB2018 images, as users' PNGs."""
    folder = tmp_path_factory.mktemp("mine")
    with zipfile.ZipFile(crops_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("images/"))
        for name in names:
            image = decode_image(archive.read(name), name)
            kind = "gray" if image.ndim == 2 or np.ptp(image[..., :3].astype(int), axis=-1).max() == 0 else "rgb"
            if not (folder / f"{kind}.png").exists():
                (folder / f"{kind}.png").write_bytes(archive.read(name))
    assert {p.name for p in folder.iterdir()} == {"gray.png", "rgb.png"}
    return folder


def test_segment_folder_writes_every_output_and_a_summary(tmp_path, real_images):
    out = tmp_path / "segment"
    segment_folder(real_images, out, "dsb2018_unet", outputs=["labels", "measurements", "geojson", "imagej_rois", "ome_zarr"], pixel_size_um=0.5)
    for stem in ("gray", "rgb"):
        for suffix in (".tif", ".csv", ".geojson", ".rois.zip", ".ome.zarr"):
            assert (out / f"{stem}{suffix}").exists(), f"{stem}{suffix}"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    summary = pd.read_csv(out / "summary.csv")
    assert summary["image"].tolist() == ["gray.png", "rgb.png"]
    for row in summary.itertuples():
        table = pd.read_csv(out / row.image.replace(".png", ".csv"))
        assert row.nuclei == len(table) > 0 and row.median_area == table["area"].median()
    assert set(summary["model"]) == {"dsb2018_unet"} and (summary["pixel_size_um"] == 0.5).all()
    assert {"modality", "seed_threshold", "foreground_threshold", "min_seed_area", "min_area"} <= set(summary.columns)
    assert list(pd.read_csv(out / "rgb.csv").filter(like="mean_intensity_").columns) == ["mean_intensity_0", "mean_intensity_1", "mean_intensity_2"]


def test_default_outputs_are_labels_and_measurements(tmp_path, real_images):
    Segmenter("dsb2018_unet").to_files(real_images / "gray.png", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gray.csv", "gray.tif"]
    assert "area_um2" not in pd.read_csv(tmp_path / "gray.csv").columns  # no pixel size known


def summary_rows(path):
    """summary.csv's rows as text, the cells Excel and R see."""
    with open(path, newline="") as file:
        return {row["image"]: row for row in csv.DictReader(file)}


def test_summary_counts_stay_integers_beside_a_skipped_entry(tmp_path, real_images):
    """A skipped entry's row has no count: the other rows' counts and integer thresholds stay
    "12", not "12.0", in the folder's summary and in the one gathered from shards."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "gray.png").write_bytes((real_images / "gray.png").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    segment_folder(folder, tmp_path / "segment", "dsb2018_unet")
    gather_shards([tmp_path / "segment"], tmp_path / "gathered")
    for summary in (tmp_path / "segment" / "summary.csv", tmp_path / "gathered" / "summary.csv"):
        rows = summary_rows(summary)
        assert rows["notes.txt"]["status"].startswith("skipped") and rows["notes.txt"]["nuclei"] == ""
        assert int(rows["gray.png"]["nuclei"]) > 0
        for column in ("nuclei", "min_seed_area", "min_area"):
            assert rows["gray.png"][column].isdigit(), (summary, column, rows["gray.png"][column])


class OneNucleusEach:
    """A Segmenter as segment_images uses it, finding one nucleus in every image."""

    def to_files(self, path, out_dir, outputs, pixel_size_um=None, tiles=None):
        return {"image": Path(path).name, "nuclei": 1, "median_area": 42.0}

    def gathered_cautions(self):
        return contextlib.nullcontext()

    def fingerprint(self):  # the settings a run's journal records
        return {}


def test_a_single_nucleus_is_logged_as_1_nucleus(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="nucleoflow.segment"):
        segment_images(OneNucleusEach(), [tmp_path / "one.png"], tmp_path)
    assert "one.png: 1 nucleus" in caplog.text and "1 nuclei" not in caplog.text
    assert summary_rows(tmp_path / "summary.csv")["one.png"]["nuclei"] == "1"


def test_unknown_output_is_refused_before_anything_is_written(tmp_path, real_images):
    with pytest.raises(InputError, match=r"segment.outputs: names unknown outputs \['shapefile'\]. Choose from"):
        segment_folder(real_images, tmp_path / "segment", "dsb2018_unet", outputs=["labels", "shapefile"])
    assert not (tmp_path / "segment").exists()


def test_a_bad_image_stops_the_folder_with_no_partial_outputs(tmp_path, real_images):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a_good.png").write_bytes((real_images / "gray.png").read_bytes())
    (folder / "b_truncated.png").write_bytes((real_images / "rgb.png").read_bytes()[:300])
    with pytest.raises(InputError, match="b_truncated.png: cannot be decoded"):
        segment_folder(folder, tmp_path / "segment", "dsb2018_unet", outputs=["labels", "measurements", "geojson", "imagej_rois", "ome_zarr"])
    assert not (tmp_path / "segment").exists() and [p.name for p in tmp_path.iterdir()] == ["mine"]


def two_channel_ome_tiff(path, nuclei, pixel_size_um):
    """A 2-channel OME-TIFF with its pixel size: DAPI (real nuclei) and GFP (another channel)."""
    planes = np.stack([nuclei, np.ascontiguousarray(nuclei[::-1, ::-1])])
    size = {"PhysicalSizeX": pixel_size_um, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": pixel_size_um, "PhysicalSizeYUnit": "µm"}
    tifffile.imwrite(path, planes, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}, **size})


def test_two_channel_ome_tiff_gets_its_channel_names_and_pixel_size_in_every_output(tmp_path, real_images):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    folder = tmp_path / "mine"
    folder.mkdir()
    two_channel_ome_tiff(folder / "cells.ome.tif", np.asarray(Image.open(real_images / "gray.png")), 0.65)
    out = tmp_path / "segment"
    segment_folder(folder, out, "dsb2018_unet", outputs=OUTPUTS, channel="DAPI")
    assert sorted(p.name for p in out.iterdir()) == sorted(["summary.csv", "index.html", *(output_name("cells", n) for n in OUTPUTS)])  # index: overlay's
    table = pd.read_csv(out / "cells.csv")
    labels = tifffile.imread(out / "cells.tif")
    assert len(table) == labels.max() > 0 and {"mean_intensity_DAPI", "mean_intensity_GFP"} <= set(table.columns)
    np.testing.assert_allclose(table["area_um2"], table["area"] * 0.65**2)
    with tifffile.TiffFile(out / "cells.tif") as tif:
        assert ome_pixel_size(tif) == (0.65, 0.65, "µm")
    nodes = list(Reader(parse_url(out / "cells.ome.zarr"))())
    nuclei = next(n for n in nodes if n.metadata.get("name") == "nuclei")
    np.testing.assert_array_equal(np.asarray(nuclei.data[0]), labels)
    assert nodes[0].metadata["channel_names"] == ["DAPI", "GFP"] and nuclei.metadata["coordinateTransformations"][0][0]["scale"] == [0.65, 0.65]
    assert pd.read_csv(out / "summary.csv")["pixel_size_um"].tolist() == [0.65]
