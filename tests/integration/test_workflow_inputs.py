"""Inputs that lie, through the workflow (issue 14): `segment` with the shipped model (no
training) tracks each input image, never serves results of another input, checks settings
before any job, and prints an expected error as the last lines the user reads."""

import os
import shutil
import time
import zipfile

import numpy as np
import pytest
import tifffile
from PIL import Image
from runner import copy_workflow, snakemake, write_config
from synthetic import discs

pytestmark = pytest.mark.slow  # each test runs Snakemake (the shipped model: no training)
SHAPE = (128, 160)


def micrograph(n):
    """A gray image with n bright discs."""
    centres = [(30, 30), (30, 80), (80, 120), (100, 40), (64, 64)][:n]
    return np.where(discs(SHAPE, centres, 9) > 0, 200, 20).astype(np.uint8)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "work").mkdir()
    return copy_workflow(tmp_path / "work")


def segment_config(work, folder, **extra):
    return write_config(work / "seg.yaml", segment={"input_dir": str(folder), "model": "dsb2018_unet", **extra}, predict={"tta": False})


def nuclei(work, stem):
    return int(tifffile.imread(work / "results" / "segment" / f"{stem}.tif").max())


def last_lines(output, n=2):
    return [line for line in output.strip().splitlines() if line.strip()][-n:]


def test_segment_tracks_each_image_and_never_serves_another_inputs_results(work, tmp_path):
    folder = tmp_path / "my_images"
    folder.mkdir()
    Image.fromarray(micrograph(2)).save(folder / "a.png")
    Image.fromarray(micrograph(3)).save(folder / "b.png")
    config = segment_config(work, folder)
    snakemake(work, "segment", "--configfile", config)
    assert (nuclei(work, "a"), nuclei(work, "b")) == (2, 3)
    assert "Nothing to be done" in snakemake(work, "segment", "--configfile", config).stdout

    # Replace a.png by another image of the same name, with an older mtime than the results.
    past = time.time() - 3600
    Image.fromarray(micrograph(5)).save(tmp_path / "other.png")
    os.utime(tmp_path / "other.png", (past, past))
    os.replace(tmp_path / "other.png", folder / "a.png")
    out = snakemake(work, "segment", "--configfile", config).stdout
    assert "Nothing to be done" not in out
    assert nuclei(work, "a") == 5

    # A mistyped folder: an error naming the key, the old results untouched but never reported done.
    typo = snakemake(work, "segment", "--configfile", segment_config(work, tmp_path / "my_imagez"), check=False)
    assert typo.returncode != 0
    assert f"segment.input_dir '{tmp_path / 'my_imagez'}' is not a folder" in typo.stdout

    # Another existing folder: segment reruns and serves only that folder's images.
    other = tmp_path / "other_images"
    other.mkdir()
    Image.fromarray(micrograph(1)).save(other / "c.png")
    os.utime(other / "c.png", (past, past))
    os.utime(other, (past, past))
    out = snakemake(work, "segment", "--configfile", segment_config(work, other)).stdout
    assert "Nothing to be done" not in out
    assert sorted(p.name for p in (work / "results" / "segment").glob("*.tif")) == ["c.tif"]
    assert nuclei(work, "c") == 1


@pytest.mark.parametrize(
    "given, needles",
    [
        (["--config", "segment={block_size: 64}"], ["segment.context (64) must be below segment.block_size (64)"]),
        (["--config", "predict={tile_size: 1008}", "model={depth: 5}"], ["predict.tile_size (1008) must be a multiple of 2**model.depth = 32"]),
        (["--config", "segment={context: 300, block_size: 256}"], ["segment.context (300) must be below segment.block_size (256)"]),
    ],
)
def test_contradicting_settings_are_refused_before_any_job(work, given, needles):
    result = snakemake(work, "-n", *given, check=False)
    assert result.returncode != 0
    for needle in needles:
        assert needle in result.stdout, result.stdout[-2000:]
    assert not (work / "results").exists()


def test_config_numbers_given_as_text_on_the_command_line_are_numbers(work, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(micrograph(2)).save(folder / "a.png")
    result = snakemake(work, "-n", "segment", "--config", f"segment={{input_dir: {folder}, block_size: 2048, pixel_size_um: 0.5, channel: 0}}")
    assert result.returncode == 0 and "segment_shard" in result.stdout


def test_expected_error_is_the_last_thing_printed(work, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(micrograph(2)).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", np.stack([micrograph(2), micrograph(1)], -1))  # two channels, no choice
    result = snakemake(work, "segment", "--configfile", segment_config(work, folder), check=False)
    assert result.returncode != 0
    message, details = last_lines(result.stdout)
    assert message.startswith(f"nucleoflow: error: {folder / 'b.tif'}: has 2 channels"), result.stdout[-3000:]
    assert message.endswith("Set segment.channel to the nuclear channel: its index, its name, or rgb for an RGB colour image")
    assert details == "(details: results/logs/segment/1-of-1.log)"
    log = (work / "results" / "logs" / "segment" / "1-of-1.log").read_text()
    assert "Traceback" in log
    assert not (work / "results" / "segment").exists() and not (work / "results" / "segment_shards" / "1-of-1").exists()
    # With the channel chosen it runs; the second channel is measured too.
    snakemake(work, "segment", "--configfile", segment_config(work, folder, channel=0))
    assert nuclei(work, "b") == 2


HAS_GPU = bool(shutil.which("nvidia-smi"))


@pytest.mark.skipif(HAS_GPU, reason="this machine has an NVIDIA GPU: the CPU warning is for machines without one")
def test_a_dry_run_without_a_gpu_says_training_takes_hours_before_any_job(work):
    """README command 1 on a CPU: the default schedule's hours are printed before the job list,
    with what to use instead; a CPU-sized or budgeted schedule gets no warning."""
    out = snakemake(work, "-n").stdout
    assert "no NVIDIA GPU on this machine" in out and "config/cpu.yaml" in out and "train.budget_min" in out
    assert out.index("no NVIDIA GPU") < out.index("Job stats:")
    for quiet in (["--configfile", "config/cpu.yaml"], ["--config", "train={budget_min: 120}"]):
        assert "no NVIDIA GPU" not in snakemake(work, "-n", *quiet).stdout, quiet


def real_crops(crops_zip, n):
    """The first n committed DSB2018 crops (PNG bytes)."""
    with zipfile.ZipFile(crops_zip) as archive:
        return [archive.read(name) for name in sorted(n for n in archive.namelist() if n.startswith("images/"))[:n]]


def test_input_dir_inside_results_is_refused_when_the_config_is_read(work, crops_zip):
    """Issue 23: segment.input_dir inside results/ (here results/segment, which Snakemake deletes
    before the segment rule writes it, and then blamed filesystem latency for the missing
    images). Refused before any job, naming the key and what to do; the images stay."""
    folder = work / "results" / "segment"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(real_crops(crops_zip, 1)[0])
    config = write_config(work / "seg.yaml", segment={"input_dir": "results/segment", "model": "dsb2018_unet"})
    result = snakemake(work, "segment", "--configfile", config, check=False)
    assert result.returncode != 0
    expected = (
        "segment.input_dir results/segment: is an input inside results, the workflow's output folder, whose folders Snakemake "
        "deletes before the jobs that write them run. Move the images out of results/ and set segment.input_dir to their folder"
    )
    assert expected in result.stdout, result.stdout[-3000:]
    assert "latency" not in result.stdout
    assert [p.name for p in folder.iterdir()] == ["a.png"] and not (work / "results" / "segment_shards").exists()


def test_an_image_named_summary_is_refused_before_any_work(work, tmp_path, crops_zip):
    """Issue 23: an image summary.png lost its measurements (summary.csv) to the run's summary."""
    folder = tmp_path / "my_images"
    folder.mkdir()
    for name, data in zip(("summary.png", "b.png"), real_crops(crops_zip, 2)):
        (folder / name).write_bytes(data)
    result = snakemake(work, "segment", "--configfile", segment_config(work, folder), check=False)
    assert result.returncode != 0
    message, details = last_lines(result.stdout)
    assert message == (
        f"nucleoflow: error: results/segment_shards/1-of-1/summary.csv: would be written twice, as the measurements of {folder / 'summary.png'} "
        "and as the summary of the run. Rename one of the images: an image <stem> gets <stem>.tif, <stem>.csv, <stem>.geojson, "
        "<stem>.rois.zip, <stem>.ome.zarr, <stem>.overlay.png (the outputs chosen); the run writes summary.csv"
    ), result.stdout[-3000:]
    assert details == "(details: results/logs/segment/1-of-1.log)"
    assert not (work / "results" / "segment").exists() and not (work / "results" / "segment_shards" / "1-of-1").exists()


def test_braces_in_an_image_name_are_a_name(work, tmp_path, crops_zip):
    """Issue 23: an image named sp{ace}.png stopped the segment target with WildcardError
    ('ace': Snakemake read the name as a wildcard). It is segmented like any other, and replacing
    it reruns segment (its fingerprint, a param, tracks it)."""
    folder = tmp_path / "my_images"
    folder.mkdir()
    first, second, third = real_crops(crops_zip, 3)
    (folder / "sp{ace}.png").write_bytes(first)
    (folder / "b.png").write_bytes(second)
    config = segment_config(work, folder)
    result = snakemake(work, "segment", "--configfile", config, check=False)
    assert result.returncode == 0 and "WildcardError" not in result.stdout, result.stdout[-3000:]
    before = nuclei(work, "sp{ace}")
    assert sorted(p.name for p in (work / "results" / "segment").glob("*.tif")) == ["b.tif", "sp{ace}.tif"]
    (folder / "sp{ace}.png").write_bytes(third)
    assert "Nothing to be done" not in snakemake(work, "segment", "--configfile", config).stdout
    assert nuclei(work, "sp{ace}") != before
