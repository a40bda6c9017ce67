"""One huge image over many jobs (issue 16): parts of an image labelled by separate jobs join into
exactly the labels and outputs that one job writes for the whole image."""

import io
import json
import re
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from test_blocks import SHIPPED, crowded_mosaic
from test_scale import small_nuclei
from tqdm import tqdm

from nucleoflow.engine import load_engine
from nucleoflow.infer import predict_rows, predict_tiled, tile_grid
from nucleoflow.model import load_model, save_model
from nucleoflow.normalize import apply_range
from nucleoflow.options import Tiling
from nucleoflow.outputs import OUTPUT_TYPES, OutputType
from nucleoflow.reader import open_image
from nucleoflow.segment import Segmenter, gather_shards, segment_folder
from nucleoflow.shards import PARTS, merge_parts, part_rows

EVERY = ["labels", "measurements", "geojson", "imagej_rois", "ome_zarr"]
# Small tiles and blocks: many tile rows, and 8 block rows of 128 px in the 900 px mosaic.
TILING = {"tile": 256, "overlap": 0.25, "batch_size": 4, "tta": False, "block": 128}


def write_streaming_model(path):
    """The shipped model without the training sizes on its card: images of every size are then
    labelled block by block at their own scale, the path of images too large to hold whole, so a
    small image can stand in for a huge one."""
    model, metadata = load_model(SHIPPED)
    del metadata["nucleus_diameter_px"]
    save_model(model, path, **metadata)
    return path


def write_mosaic(path, crops_zip):
    """A 900 x 700 px TIFF of the four most crowded committed crops, mirrored into 2 x 2 copies
    (about 500 nuclei, block borders crossing them everywhere)."""
    m = crowded_mosaic(crops_zip)
    tifffile.imwrite(path, np.block([[m, m[:, ::-1]], [m[::-1], m]])[:900, :700])
    return path


@pytest.fixture(scope="module")
def streaming_model(tmp_path_factory):
    return write_streaming_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory, crops_zip):
    return write_mosaic(tmp_path_factory.mktemp("images") / "mosaic.tif", crops_zip)


def test_rows_of_an_image_are_predicted_as_in_the_whole_image(mosaic):
    """predict_rows(rows=...) runs only the tile rows over those rows and gives the whole image's
    probabilities there, bit for bit."""
    engine = load_engine(SHIPPED, "auto", 1)
    tiling = Tiling(**TILING)
    with open_image(mosaic) as source:
        image = apply_range(source.read(0, 900, 0, 700), source.appearance)
    whole = predict_tiled(engine, image, tiling)
    for y0, y1 in [(0, 100), (130, 517), (600, 900), (437, 438)]:
        tiles = tqdm(file=io.StringIO())
        bands = list(predict_rows(lambda a, b: image[:, a:b], 900, 700, engine, tiling, tiles, rows=(y0, y1)))
        assert bands[0][0] == y0 and sum(p.shape[1] for _, p in bands) == y1 - y0
        assert np.array_equal(np.concatenate([p for _, p in bands], axis=1), whole[:, y0:y1])
        assert tiles.n == tiles.total < 5 * 4  # 5 tile rows of 4 tiles in the whole image


def outputs_of(folder, stem):
    """Everything segment wrote for one image, in comparable form."""
    with zipfile.ZipFile(folder / f"{stem}.rois.zip") as rois:
        roi_entries = [(name, rois.read(name)) for name in rois.namelist()]
    zarr_labels = zarr.open_group(str(folder / f"{stem}.ome.zarr"), mode="r")["labels/nuclei/s0"][:] if (folder / f"{stem}.ome.zarr").exists() else None
    return {
        "labels": tifffile.imread(folder / f"{stem}.tif"),
        "csv": (folder / f"{stem}.csv").read_bytes(),
        "geojson": (folder / f"{stem}.geojson").read_text(),
        "rois": roi_entries,
        "ome_zarr": zarr_labels,
    }


def assert_same_outputs(mine, theirs):
    assert np.array_equal(mine["labels"], theirs["labels"])
    assert mine["csv"] == theirs["csv"]
    assert mine["geojson"] == theirs["geojson"]
    assert mine["rois"] == theirs["rois"]
    assert (mine["ome_zarr"] is None) == (theirs["ome_zarr"] is None)
    assert mine["ome_zarr"] is None or np.array_equal(mine["ome_zarr"], theirs["ome_zarr"])


def label_in_parts(segmenter, image, folder, n, outputs):
    """Parts 1..n of an image, each as its own job would write it, then joined; returns the
    summary row and the part records."""
    dirs = [folder / f"{k}-of-{n}" for k in range(1, n + 1)]
    for k, part_dir in enumerate(dirs, 1):
        segmenter.to_part(image, part_dir, outputs, (k, n))
    dirs = [d for d in dirs if d.exists()]  # with more parts than block rows, some get none
    (folder / "joined").mkdir()
    row = merge_parts(dirs, folder / "joined", "mosaic")
    return row, [json.loads((d / "part.json").read_text()) for d in dirs]


def joined_counts(caplog):
    trimmed, dropped = re.findall(r"(\d+) nuclei trimmed, (\d+) dropped", caplog.text)[-1]
    return int(trimmed), int(dropped)


@pytest.mark.parametrize("context, part_counts", [(2, (2, 3, 9)), (80, (9,))])
def test_parts_join_into_exactly_one_jobs_outputs(streaming_model, mosaic, tmp_path, caplog, context, part_counts):
    """2, 3 and 9 parts (more than the 8 block rows: some get none) give one job's labels,
    numbering, measurements, GeoJSON, ROIs, OME-Zarr labels and summary, all identical.

    A 2 px context makes neighbouring blocks disagree about the nuclei they cut, so the nuclei
    of adjacent parts overlap where their contexts do: the join must trim nuclei and drop some
    covered entirely, the hard case (a 32 px context gives none here). An 80 px context, over
    half the 128 px block, lets a part's nuclei reach into the part after next; exact all the same.
    """
    caplog.set_level("INFO", logger="nucleoflow.shards")
    segmenter = Segmenter(streaming_model, context=context, **TILING)
    single = segmenter.to_files(mosaic, tmp_path / "one_job", EVERY)
    assert single["nuclei"] > 450
    reference = outputs_of(tmp_path / "one_job", "mosaic")
    dropped = 0
    for n in part_counts:
        row, parts = label_in_parts(segmenter, mosaic, tmp_path / f"{n}_parts", n, EVERY)
        assert 1 < len(parts) <= min(n, 8) and parts[-1]["block_rows"][1] == 8
        assert_same_outputs(outputs_of(tmp_path / f"{n}_parts" / "joined", "mosaic"), reference)
        assert row == single
        if context == 2:
            trimmed, n_dropped = joined_counts(caplog)
            assert trimmed > 0
            dropped += n_dropped
        else:  # some part's nuclei reach past the next part into the rows of the one after
            assert any(a["rows"][1] > c["block_rows"][0] * 128 - context for a, c in zip(parts, parts[2:]))
    assert dropped > 0 or context != 2


class CentroidsFile:
    """A new per-nucleus output, as a user would add one: "label,x,y" of each nucleus's outline's
    vertices' mean, a line per nucleus. Its class and one line of outputs.OUTPUT_TYPES are all
    it takes: segment, the parts and their join find it there."""

    needs = frozenset({"outline"})

    def __init__(self, path, nuclei):
        self.file = open(path, "w")

    @staticmethod
    def entry(label, row, record, polygons):
        x, y = np.concatenate([np.asarray(polygon[0], float) for polygon in polygons]).mean(axis=0)
        return f"{label},{x:.2f},{y:.2f}\n"

    def add(self, label, line):
        self.file.write(line)

    def close(self):
        self.file.close()

    @staticmethod
    def read(path):
        with open(path) as file:
            yield from file

    @staticmethod
    def relabel(line, label):
        return f"{label},{line.split(',', 1)[1]}"


def test_a_new_output_is_its_class_and_a_registration(streaming_model, mosaic, tmp_path, monkeypatch):
    monkeypatch.setitem(OUTPUT_TYPES, "centroids", OutputType(".centroids.csv", "nucleus", CentroidsFile))
    segmenter = Segmenter(streaming_model, context=2, **TILING)  # parts that trim and drop nuclei
    single = segmenter.to_files(mosaic, tmp_path / "one_job", ["labels", "centroids"])
    lines = (tmp_path / "one_job" / "mosaic.centroids.csv").read_text().splitlines()
    assert len(lines) == single["nuclei"] > 450 and lines[0].startswith("1,") and lines[-1].startswith(f"{single['nuclei']},")
    label_in_parts(segmenter, mosaic, tmp_path / "parts", 3, ["labels", "centroids"])
    assert (tmp_path / "parts" / "joined" / "mosaic.centroids.csv").read_text().splitlines() == lines


def test_parts_of_an_image_replaced_since_are_not_joined(streaming_model, mosaic, tmp_path):
    """The join reads the image again (overlay, OME-Zarr, trimmed nuclei): one of another size
    than its parts were labelled at is refused, nothing written."""
    image = tmp_path / "mosaic.tif"
    shutil.copy(mosaic, image)  # the module's mosaic stays as it is
    segmenter = Segmenter(streaming_model, **TILING)
    dirs = [tmp_path / f"{k}-of-2" for k in (1, 2)]
    for k, part_dir in enumerate(dirs, 1):
        segmenter.to_part(image, part_dir, ["labels"], (k, 2))
    tifffile.imwrite(image, tifffile.imread(image)[:-16])
    (tmp_path / "joined").mkdir()
    with pytest.raises(ValueError, match="its parts were labelled at"):
        merge_parts(dirs, tmp_path / "joined", "mosaic")
    assert list((tmp_path / "joined").iterdir()) == []


def test_segment_folder_splits_huge_images_over_its_jobs(streaming_model, mosaic, crops_zip, tmp_path):
    """segment_folder with 3 shards splits the image above split_above_mp into 3 parts, gives the
    small images whole to one shard each, and the gather writes what one job writes; a missing
    part is refused, naming the image."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "mosaic.tif").write_bytes(mosaic.read_bytes())
    with zipfile.ZipFile(crops_zip) as archive:
        small = sorted(n for n in archive.namelist() if n.startswith("images/"))[:2]
        for name in small:
            (folder / name.split("/")[1]).write_bytes(archive.read(name))
    # 0.63 MP mosaic, 0.07 MP crops; the shards label blocks in 2 worker processes, one job in this one
    options = dict(outputs=["labels", "measurements"], split_above_mp=0.5, context=32, **TILING)
    segment_folder(folder, tmp_path / "one_job", streaming_model, **options)
    shards = [tmp_path / "shards" / f"{k}-of-3" for k in (1, 2, 3)]
    for k, shard in enumerate(shards, 1):
        segment_folder(folder, shard, streaming_model, shard=(k, 3), workers=2, **options)
        assert [p.name for p in (shard / PARTS).iterdir()] == ["mosaic"]
    assert sorted(p.name for shard in shards for p in shard.glob("*.tif")) == sorted(n.split("/")[1].replace(".png", ".tif") for n in small)
    gather_shards(shards, tmp_path / "gathered")
    names = sorted(p.name for p in (tmp_path / "one_job").iterdir())
    assert sorted(p.name for p in (tmp_path / "gathered").iterdir()) == names
    for name in names:
        mine, theirs = tmp_path / "gathered" / name, tmp_path / "one_job" / name
        if name.endswith(".tif"):
            assert np.array_equal(tifffile.imread(mine), tifffile.imread(theirs))
        elif name.endswith(".csv") and name != "summary.csv":
            assert mine.read_bytes() == theirs.read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "gathered" / "summary.csv"), pd.read_csv(tmp_path / "one_job" / "summary.csv"))
    with pytest.raises(ValueError, match="mosaic.tif miss block rows"):
        gather_shards([shards[0], shards[2]], tmp_path / "incomplete")
    assert not (tmp_path / "incomplete").exists()


def test_an_image_sized_by_the_model_is_split_like_any_other(mosaic, tmp_path):
    """The shipped model's card has training sizes, so every part sizes the image (here: its own
    scale); the image was held whole, all of it part 1's, and now splits into parts whose join
    is one job's outputs."""
    segmenter = Segmenter(SHIPPED, **TILING)
    single = segmenter.to_files(mosaic, tmp_path / "one_job", ["labels", "measurements"])
    row, parts = label_in_parts(segmenter, mosaic, tmp_path / "parts", 3, ["labels", "measurements"])
    assert [p["part"] for p in parts] == [[1, 3], [2, 3], [3, 3]] and {p["zoom"] for p in parts} == {1.0}
    mine, theirs = tmp_path / "parts" / "joined", tmp_path / "one_job"
    assert np.array_equal(tifffile.imread(mine / "mosaic.tif"), tifffile.imread(theirs / "mosaic.tif"))
    assert (mine / "mosaic.csv").read_bytes() == (theirs / "mosaic.csv").read_bytes() and row == single


def test_a_zoomed_image_splits_into_parts_that_join_into_one_jobs_outputs(tmp_path):
    """Nuclei 4-5 px across (test_scale.small_nuclei, mirrored to 256 px): every part zooms the
    image 4x as one job does and labels its own block rows (64 image pixels each) at that zoom;
    their join is one job's labels and measurements, exactly."""
    image, _ = small_nuclei()
    path = tmp_path / "mosaic.tif"
    tifffile.imwrite(path, np.block([[image, image[:, ::-1]], [image[::-1], image]]))
    segmenter = Segmenter(SHIPPED, **TILING)
    single = segmenter.to_files(path, tmp_path / "one_job", ["labels", "measurements"])
    assert single["zoom"] > 3 and single["nuclei"] > 300
    row, parts = label_in_parts(segmenter, path, tmp_path / "parts", 3, ["labels", "measurements"])
    assert len(parts) > 1 and {(p["zoom"], p["block"]) for p in parts} == {(single["zoom"], 64)} and parts[-1]["block_rows"][1] == 4
    mine, theirs = tmp_path / "parts" / "joined", tmp_path / "one_job"
    assert np.array_equal(tifffile.imread(mine / "mosaic.tif"), tifffile.imread(theirs / "mosaic.tif"))
    assert (mine / "mosaic.csv").read_bytes() == (theirs / "mosaic.csv").read_bytes() and row == single


def test_parts_are_cut_where_few_tile_rows_straddle():
    """A 10000 px image over 4 parts with the default tiling (5 tile rows of 2112 px): each part
    predicts 2 tile rows; splitting its 10 block rows evenly (2, 3, 2, 3) would give one 3."""
    engine, tiling = load_engine(SHIPPED, "auto", 1), Tiling(tta=False)
    tile_h, _, tops, _ = tile_grid(10000, 10000, engine, tiling)
    assert len(tops) == 5

    def tile_rows(first, bottom):
        return sum(y < bottom and y + tile_h > first for y in tops)

    parts = [part_rows(10000, 10000, engine, tiling, (k, 4)) for k in (1, 2, 3, 4)]
    assert [tile_rows(part.first, part.bottom) for part in parts] == [2, 2, 2, 2]
    assert tile_rows(2 * 1024 - 64, 5 * 1024 + 64) == 3  # the even split's second part
