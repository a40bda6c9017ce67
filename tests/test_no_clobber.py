"""Outputs that destroy inputs or each other (issue 23, class 1). One check (segment.check_targets,
clobber.check_no_clobber) refuses them before any work, naming the file and what to do and leaving
everything as it was, for the command line, segment_folder (what the workflow runs),
segment_images, Segmenter's writers and gather_shards; the workflow refuses segment.input_dir
inside results/ when it reads the config (clobber.check_outside_results; test_workflow_inputs.py runs
Snakemake on both); the run's summary is written whole or not at all. The images are committed
DSB2018 crops."""

import contextlib
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from test_cli import cli

from nucleoflow.errors import InputError
from nucleoflow.segment import Segmenter, gather_shards, segment_folder, segment_images
from nucleoflow.shipped import model_path

SHIPPED = model_path("dsb2018_unet")
CLASH_REMEDY = (
    "Rename one of the images: an image <stem> gets <stem>.tif, <stem>.csv, <stem>.geojson, <stem>.rois.zip, <stem>.ome.zarr, <stem>.overlay.png "
    "(the outputs chosen); the run writes summary.csv"
)


@pytest.fixture(scope="module")
def crops(crops_zip):
    """Three committed fluorescence crops, gray (one channel of the PNG)."""
    stems = pd.read_csv(crops_zip.parent / "crops.csv").query("modality == 'fluorescence'")["stem"][:3]
    with zipfile.ZipFile(crops_zip) as archive:
        images = [np.asarray(Image.open(io.BytesIO(archive.read(f"images/{stem}.png")))) for stem in stems]
    return [image[..., 0] if image.ndim == 3 else image for image in images]


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter(SHIPPED, tta=False)


def save(folder, names, crops):
    """The crops saved in `folder` under `names`, the suffix choosing the format (.tif: TIFF)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, crops):
        if name.endswith(".tif"):
            tifffile.imwrite(folder / name, image)
        else:
            Image.fromarray(image).save(folder / name)
    return folder


def contents(folder):
    """Every entry under `folder` with its bytes' digest (None: a folder): what a refused run
    must leave exactly as it was."""
    return {str(p.relative_to(folder)): None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*"))}


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


class Recording:
    """Stands in for a Segmenter in segment_images: records the images it is asked to label,
    writes nothing, and gives each a summary row."""

    def __init__(self):
        self.labelled = []

    def gathered_cautions(self):
        return contextlib.nullcontext()

    def fingerprint(self):  # the settings a run's journal records
        return {}

    def to_files(self, path, out_dir, outputs, pixel_size_um=None, tiles=None):
        self.labelled.append(path)
        return {"image": Path(path).name, "nuclei": 0}


# ---------------------------------------------------------------- outputs over inputs


@pytest.mark.parametrize("model", ["dsb2018_unet", "no_model.pt"])
def test_command_line_never_writes_over_its_inputs(tmp_path, crops, model):
    """`nucleoflow segment imgs -o imgs` replaced every imgs/x.tif with its labels and exited 0.
    Refused before the model loads (a model that does not exist is never reached), naming the
    file and what to do, with nothing written."""
    save(tmp_path / "imgs", ["x.tif", "y.png"], crops)
    before = contents(tmp_path)
    result = cli("segment", "imgs", "-o", "imgs", "--model", model, "--no-tta", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert last_line(result) == (
        "nucleoflow: error: imgs/x.tif: is an input and would be overwritten by the labels of imgs/x.tif (imgs/x.tif). "
        "Write the outputs elsewhere: choose an -o folder that holds no input"
    )
    assert "Traceback" not in result.stderr and "no_model.pt" not in result.stderr
    assert contents(tmp_path) == before


@pytest.mark.parametrize(
    "inputs, out",
    [
        (["imgs/x.tif"], "imgs"),  # the file alone
        (["imgs"], "./imgs/../imgs/"),  # another spelling of the folder
        (["imgs/x.tif"], "link"),  # the folder through a symbolic link
        (["link/x.tif"], "imgs"),  # the input through one
    ],
)
def test_command_line_sees_through_other_names_of_an_input(tmp_path, crops, inputs, out):
    save(tmp_path / "imgs", ["x.tif"], crops)
    (tmp_path / "link").symlink_to("imgs")
    before = contents(tmp_path)
    result = cli("segment", *inputs, "-o", out, "--model", "no_model.pt", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "x.tif: is an input and would be overwritten by the labels of" in last_line(result)
    assert contents(tmp_path) == before


def test_command_line_output_onto_an_input_file_is_refused(tmp_path, crops):
    """-o naming the image itself: a folder cannot be made there (it was a traceback)."""
    save(tmp_path / "imgs", ["x.tif"], crops)
    before = contents(tmp_path)
    result = cli("segment", "imgs/x.tif", "-o", "imgs/x.tif", "--model", "no_model.pt", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert last_line(result) == "nucleoflow: error: imgs/x.tif: is a file, not a folder. Set -o to a folder (created if missing)"
    assert contents(tmp_path) == before


def test_command_line_writes_beside_the_inputs_it_does_not_replace(tmp_path, crops):
    """Outputs into the images' own folder stay allowed where they replace no input, and a rerun
    replaces its own earlier outputs; once those labels are themselves inputs (the whole folder
    given), they are not written over."""
    folder = save(tmp_path / "imgs", ["y.png"], crops)
    png = (folder / "y.png").read_bytes()
    for _ in range(2):
        result = cli("segment", "imgs/y.png", "-o", "imgs", "--no-tta", "--threads", "1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["summary.csv", "y.csv", "y.png", "y.tif"]
    assert (folder / "y.png").read_bytes() == png and tifffile.imread(folder / "y.tif").max() > 0
    before = contents(tmp_path)
    result = cli("segment", "imgs", "-o", "imgs", "--no-tta", cwd=tmp_path)
    assert result.returncode == 1 and "imgs/y.tif: is an input and would be overwritten by the labels of imgs/y.png" in last_line(result)
    assert contents(tmp_path) == before


@pytest.mark.parametrize("out", ["imgs", "data", "link"])
def test_segment_folder_never_replaces_the_folder_it_reads(tmp_path, crops, out):
    """segment_folder replaces its out_dir whole: out_dir the input folder, a folder holding it,
    or a link to it would have deleted every image. Refused before any image is opened."""
    data = tmp_path / "data"
    imgs = save(data / "imgs", ["x.png", "y.png"], crops)
    (data / "link").symlink_to("imgs")
    before = contents(tmp_path)
    with pytest.raises(InputError) as refused:
        segment_folder(imgs, {"imgs": imgs, "data": data, "link": data / "link"}[out], tmp_path / "no_model.pt")
    message = str(refused.value)
    assert message.startswith(f"{imgs}: is an input ")
    assert message.endswith("Write the outputs elsewhere: choose an out_dir that neither is nor holds the input folder")
    assert contents(tmp_path) == before


def test_segmenter_writers_never_write_over_their_image(tmp_path, crops, segmenter):
    """to_files, to_tiff and to_part, given the image's own folder or file (by any name): refused,
    the image untouched, no temporary file left; elsewhere they write its labels."""
    folder = save(tmp_path / "imgs", ["x.tif"], crops)
    (tmp_path / "link").symlink_to("imgs")
    image = folder / "x.tif"
    before = contents(tmp_path)
    writes = [
        lambda: segmenter.to_files(image, folder, ["labels"]),
        lambda: segmenter.to_files(image, tmp_path / "link", ["measurements", "labels"]),
        lambda: segmenter.to_tiff(image, image),
        lambda: segmenter.to_tiff(image, tmp_path / "link" / "x.tif"),
        lambda: segmenter.to_part(image, folder, ["labels"], (1, 2)),  # a part's folder is replaced whole
        lambda: segmenter.to_part(image, tmp_path, ["labels"], (1, 2)),
    ]
    for write in writes:
        with pytest.raises(InputError, match=r"x\.tif: is an input (and would be overwritten by the labels|inside .*, the part's folder)"):
            write()
        assert contents(tmp_path) == before
    assert segmenter.to_tiff(image, tmp_path / "out" / "x.tif") > 0
    assert contents(tmp_path / "imgs") == {"x.tif": before["imgs/x.tif"]}


def test_input_folder_inside_the_workflows_results_is_refused(tmp_path):
    """What the Snakefile runs on segment.input_dir before any job (Snakemake deletes
    results/segment before the segment rule writes it, with the images in it)."""
    from nucleoflow.clobber import check_outside_results

    results = tmp_path / "results"
    (results / "segment").mkdir(parents=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "into_results").symlink_to(results / "segment")
    for folder in (results / "segment", results, tmp_path / "into_results"):
        with pytest.raises(InputError) as refused:
            check_outside_results(folder, "segment.input_dir", results)
        assert str(refused.value).startswith(f"{folder}: is an input ")
        assert "the workflow's output folder, whose folders Snakemake deletes before the jobs that write them run" in str(refused.value)
        assert str(refused.value).endswith(f"Move the images out of {results}/ and set segment.input_dir to their folder")
    check_outside_results(tmp_path / "mine", "segment.input_dir", results)  # beside results/
    check_outside_results(tmp_path / "missing", "segment.input_dir", results)  # refused later, as no folder


# ---------------------------------------------------------------- outputs over outputs


def test_an_image_named_summary_keeps_its_measurements(tmp_path, crops):
    """summary.png's measurements (summary.csv) were replaced by the run's summary. Refused
    before any work; without measurements nothing clashes and both are written."""
    save(tmp_path / "imgs", ["summary.png", "y.png"], crops)
    result = cli("segment", "imgs", "-o", "out", "--model", "no_model.pt", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert last_line(result) == (
        "nucleoflow: error: out/summary.csv: would be written twice, as the measurements of imgs/summary.png and as the summary of the run. " + CLASH_REMEDY
    )
    assert not (tmp_path / "out").exists()
    result = cli("segment", "imgs", "-o", "out", "--outputs", "labels", "--no-tta", "--threads", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary.csv", "summary.tif", "y.tif"]
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["image"].tolist() == ["summary.png", "y.png"]


@pytest.mark.parametrize(
    "names, clash",
    [
        (["a.png", "a.tif"], "a.tif"),  # one stem, two formats: both labels are a.tif
        (["A.png", "a.tif"], "a.tif"),  # A.tif and a.tif: one file on macOS and Windows
        (["x.ome.tif", "x.png"], "x.tif"),  # .ome is not part of the stem
        (["summary.png", "y.png"], "summary.csv"),  # the run's summary
    ],
)
def test_segment_folder_refuses_two_outputs_of_one_name(tmp_path, crops, names, clash):
    """What the workflow's segment jobs run: refused before any image is opened or the model
    loads, naming the file, both of its writers and what to do."""
    folder = save(tmp_path / "imgs", names, crops)
    with pytest.raises(InputError) as refused:
        segment_folder(folder, tmp_path / "out", tmp_path / "no_model.pt")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'out' / clash}: would be written twice, as the ")
    assert message.endswith(CLASH_REMEDY)
    assert not (tmp_path / "out").exists()


def test_segment_images_refuses_a_clash_before_labelling_any_image(tmp_path, crops):
    """Two images of one stem from two folders (the command line takes files from anywhere)."""
    one = save(tmp_path / "one", ["a.png"], crops)
    two = save(tmp_path / "two", ["a.tif"], crops)
    segmenter = Recording()
    with pytest.raises(InputError) as refused:
        segment_images(segmenter, [one / "a.png", two / "a.tif"], tmp_path / "out")
    expected = f"{tmp_path / 'out' / 'a.tif'}: would be written twice, as the labels of {one / 'a.png'} and as the labels of {two / 'a.tif'}. "
    assert str(refused.value) == expected + CLASH_REMEDY
    assert segmenter.labelled == [] and not (tmp_path / "out").exists()


def shard(folder, names):
    """A shard's folder as segment_folder leaves it: outputs, its summary, Snakemake's timestamp."""
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(name.encode())
    pd.DataFrame({"image": [f"{Path(n).stem}.png" for n in names], "nuclei": 1}).to_csv(folder / "summary.csv", index=False)
    (folder / ".snakemake_timestamp").touch()
    return folder


def test_gather_refuses_two_shards_writing_one_file_and_an_out_dir_holding_a_shard(tmp_path):
    """The gather linked the second shard's a.tif over the first's (a copy where the link
    failed); and its out_dir is replaced whole. Both refused before anything is written."""
    one, two, three = (shard(tmp_path / "shards" / f"{k}-of-3", [name]) for k, name in ((1, "a.tif"), (2, "a.tif"), (3, "b.tif")))
    with pytest.raises(InputError) as refused:
        gather_shards([one, two], tmp_path / "out")
    clash = f"{tmp_path / 'out' / 'a.tif'}: would be written twice, as the copy of {one / 'a.tif'} and as the copy of {two / 'a.tif'}. "
    assert str(refused.value) == clash + CLASH_REMEDY
    assert not (tmp_path / "out").exists()
    for out in (one, tmp_path / "shards"):
        with pytest.raises(InputError, match=r"1-of-3: is an input .*Choose an out_dir that holds none of the shards' folders and no image"):
            gather_shards([one, three], out)
    assert (one / "a.tif").read_bytes() == b"a.tif"
    gather_shards([one, three], tmp_path / "out")  # Snakemake's hidden files are not outputs: left out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif", "summary.csv"]
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["image"].tolist() == ["a.png", "b.png"]


# ---------------------------------------------------------------- whole or not at all


def test_summary_is_written_whole_or_not_at_all(tmp_path, crops, monkeypatch):
    """summary.csv was written in place: a run that died writing it left half a table over the
    last complete one. Now a temporary file beside it is renamed into place (atomic.atomic_path); the
    last run's summary is gone before the run writes any image (issue 23, class 2: it would sit
    beside this run's files), and the run's journal stays for the rerun that finishes it."""
    folder = save(tmp_path / "imgs", ["a.png"], crops)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("image,nuclei\nearlier.png,7\n")

    def dies_half_way(frame, path, **kwargs):
        Path(path).write_text("image,nuc")
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(pd.DataFrame, "to_csv", dies_half_way)
    with pytest.raises(RuntimeError, match="the disk went away"):
        segment_images(Recording(), [folder / "a.png"], out)
    assert [p.name for p in out.iterdir()] == [".nucleoflow.journal"]  # no summary, no temporary file
    monkeypatch.undo()
    segmenter = Recording()
    segment_images(segmenter, [folder / "a.png"], out)
    assert segmenter.labelled == [] and pd.read_csv(out / "summary.csv")["image"].tolist() == ["a.png"]
    assert [p.name for p in out.iterdir()] == ["summary.csv"]
