"""The `nucleoflow segment` command, run as users run it, on committed DSB2018 crops."""

import csv
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from nucleoflow.reader import read_image
from nucleoflow.segment import Segmenter


def cli(*args, cwd):
    """Run the command in a fresh process (the installed entry point's target), as a user would."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from nucleoflow.cli import main; sys.exit(main())", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def crops(crops_zip, tmp_path_factory):
    """Five committed crops: three in a folder, two given as files (one histology)."""
    root = tmp_path_factory.mktemp("crops")
    with zipfile.ZipFile(crops_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("images/"))
        for i, name in enumerate(names[:3] + names[-2:]):
            path = root / ("folder" if i < 3 else "loose") / name.split("/")[-1]
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(archive.read(name))
    return root


def test_entry_point_is_declared():
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "nucleoflow"]
    assert script.value == "nucleoflow.cli:main"


def test_segment_labels_folders_and_files_like_the_library(crops):
    loose = sorted((crops / "loose").iterdir())
    result = cli("segment", "folder", *(str(p.relative_to(crops)) for p in loose), "-o", "out", "--no-tta", "--threads", "2", cwd=crops)
    assert result.returncode == 0, result.stderr
    inputs = sorted((crops / "folder").iterdir()) + loose
    written = sorted(p.name for p in (crops / "out").iterdir())
    assert written == sorted([f"{p.stem}{suffix}" for p in inputs for suffix in (".tif", ".csv")] + ["summary.csv"])  # segment.outputs' defaults
    assert "images: 100%" in result.stderr and "5/5" in result.stderr  # the progress bar, with its rate
    segmenter = Segmenter("dsb2018_unet", threads=2, tta=False)
    for path in inputs:
        written = tifffile.imread(crops / "out" / f"{path.stem}.tif")
        assert written.dtype == np.uint32 and written.max() > 3
        np.testing.assert_array_equal(written, segmenter(read_image(path)))


def test_outputs_and_pixel_size_reach_the_library(crops):
    loose = sorted((crops / "loose").iterdir())[0]
    result = cli("segment", str(loose), "-o", "chosen", "--outputs", "labels", "geojson", "--pixel-size", "0.5", "--no-tta", "--threads", "2", cwd=crops)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (crops / "chosen").iterdir()) == sorted([f"{loose.stem}.tif", f"{loose.stem}.geojson", "summary.csv"])
    summary = pd.read_csv(crops / "chosen" / "summary.csv")
    assert summary["pixel_size_um"].tolist() == [0.5] and summary["nuclei"].iloc[0] > 3
    assert len(json.loads((crops / "chosen" / f"{loose.stem}.geojson").read_text())["features"]) == summary["nuclei"].iloc[0]
    refused = cli("segment", str(loose), "-o", "never", "--outputs", "labels", "shapefile", cwd=crops)
    assert refused.returncode == 2 and "invalid choice: 'shapefile'" in refused.stderr and not (crops / "never").exists()


def test_help_reads_like_the_fields_tools(crops):
    result = cli("segment", "--help", cwd=crops)
    assert result.returncode == 0
    options = ("INPUT [INPUT ...]", "-o OUT", "--model M", "--workers N", "--outputs NAME [NAME ...]", "--tta, --no-tta")
    for text in (*options, "postprocess", "examples:", "default: 1024"):
        assert text in result.stdout, text


def test_missing_input_is_named_and_nothing_is_written(crops):
    result = cli("segment", "folder", "missing.png", "-o", "never", cwd=crops)
    assert result.returncode == 1
    assert "missing.png: does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not (crops / "never").exists()


# ---------------------------------------------------------------- issue 22, item 5: CLI friction


def gray_crop(crops):
    """The first folder crop as an 8-bit gray array."""
    return np.asarray(Image.open(sorted((crops / "folder").iterdir())[0]).convert("L"))


def test_errors_name_the_flags_and_list_channels_readably(crops):
    """Messages from a CLI run name its flags, not the workflow's config keys (errors.setting, one
    mechanism: the same error in the library names segment.channel); channel errors read well."""
    folder = crops / "flags"
    folder.mkdir()
    gray = gray_crop(crops)
    Image.fromarray(gray).save(folder / "gray.png")
    tifffile.imwrite(folder / "two.tif", np.stack([gray, 255 - gray], -1))  # two unnamed channels
    runs = {
        ("two.tif",): ["two.tif: has 2 channels (unnamed) and is not an RGB colour image", "Set --channel to the nuclear channel"],
        ("two.tif", "--channel", "DAPI"): ["has no channel named 'DAPI': its 2 channels have no names in its metadata. Set --channel to an index: 0 or 1"],
        ("two.tif", "--channel", "rgb"): ["has 2 channels, not the 3 of an RGB (or 4 of an RGBA) image (--channel rgb)", "Set --channel to the index of"],
        ("gray.png", "--channel", "2"): ["gray.png: has no channel 2: it has 1 channel. Set --channel to 0, its only channel, or leave it unset"],
        ("gray.png", "--model", "missing.pt"): ["missing.pt: cannot be read", "Point --model at an existing model.pt"],
    }
    for args, needles in runs.items():
        result = cli("segment", *args, "-o", "never", cwd=folder)
        assert result.returncode == 1, (args, result.stderr)
        for needle in (*needles, "nucleoflow: error: "):
            assert needle in result.stderr, (args, needle, result.stderr)
        for wrong in ("segment.", "(no names)", "are no names", "from 0 to 0", "1 channels", "Traceback"):
            assert wrong not in result.stderr, (args, wrong, result.stderr)
    assert not (folder / "never").exists()
    from nucleoflow.cli import FLAGS
    from nucleoflow.errors import InputError, spelled_as
    from nucleoflow.reader import open_image

    with pytest.raises(InputError, match=r"Set segment\.channel to the nuclear channel"):  # the workflow's (and the API's) words
        open_image(folder / "two.tif")
    with spelled_as(FLAGS), pytest.raises(InputError, match=r"Set --channel to the nuclear channel"):
        open_image(folder / "two.tif")
    help_text = cli("segment", "--help", cwd=folder).stdout
    assert all(f"{flag} " in help_text for flag in FLAGS.values())  # each spelling is a flag of the command


def summary_rows(folder):
    """summary.csv as text cells (pandas would read an empty count as NaN and the others as floats)."""
    with open(folder / "summary.csv", newline="") as file:
        return {row["image"]: row for row in csv.DictReader(file)}


def test_a_corrupt_image_is_skipped_with_why_unless_strict(crops):
    """One truncated PNG among good images: named in the log and as a skipped summary row, the
    others segmented, counts still integers; quiet without --verbose but for the progress bar;
    --strict stops at it, writing nothing."""
    folder = crops / "mixed"
    folder.mkdir()
    good = sorted((crops / "folder").iterdir())[:2]
    for path in good:
        shutil.copy(path, folder / path.name)
    data = good[0].read_bytes()
    (folder / "broken.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("x")
    result = cli("segment", "mixed", "-o", "out_mixed", "--no-tta", "--threads", "2", cwd=crops)
    assert result.returncode == 0, result.stderr
    assert "mixed/broken.png: skipped, cannot be decoded as an image" in result.stderr  # the path as given
    rows = summary_rows(crops / "out_mixed")
    assert rows["broken.png"]["status"].startswith("skipped: cannot be decoded as an image") and rows["broken.png"]["nuclei"] == ""
    assert rows["notes.txt"]["status"].startswith("skipped: not an image") and rows["notes.txt"]["nuclei"] == ""
    for path in good:
        assert rows[path.name]["status"] == "segmented" and rows[path.name]["nuclei"].isdigit(), rows[path.name]
        assert int(rows[path.name]["nuclei"]) == tifffile.imread(crops / "out_mixed" / f"{path.stem}.tif").max() > 0
    assert not (crops / "out_mixed" / "broken.tif").exists()
    # Quiet: the bar and the closing line, no per-image lines (size, channels, nuclei found).
    assert "images: 100%" in result.stderr and "2/2" in result.stderr
    assert "2 images segmented into out_mixed, 2 skipped (summary.csv says why)" in result.stderr
    assert "channel(s)" not in result.stderr and not re.search(r"\.png: \d+ nucle", result.stderr), result.stderr
    strict = cli("segment", "mixed", "-o", "out_strict", "--strict", "--no-tta", "--threads", "2", cwd=crops)
    assert strict.returncode == 1
    assert "nucleoflow: error: mixed/broken.png: cannot be decoded as an image" in strict.stderr and "corrupt or truncated" in strict.stderr
    assert not (crops / "out_strict").exists()


def test_verbose_logs_each_image_and_one_nucleus_is_one_nucleus(crops):
    from synthetic import discs

    folder = crops / "one"
    folder.mkdir()
    Image.fromarray(np.where(discs(centres=((64, 80),), radius=8) > 0, 200, 20).astype(np.uint8)).save(folder / "one.png")
    result = cli("segment", "one", "-o", "out_one", "--no-tta", "--threads", "2", "--verbose", cwd=crops)
    assert result.returncode == 0, result.stderr
    assert summary_rows(crops / "out_one")["one.png"]["nuclei"] == "1"
    assert "one.png: 160x128, 1 channel(s)" in result.stderr  # --verbose: each image's description...
    assert "one.png: 1 nucleus\n" in result.stderr and "1 nuclei" not in result.stderr  # ...and what it found
    assert "1 image segmented into out_one" in result.stderr


def test_a_model_caution_is_said_once_with_the_number_of_images(crops, tmp_path):
    """A model card's caution for a modality is printed once per run, naming how many images it
    concerns, not once per image (summary.csv keeps it on each image's row)."""
    from nucleoflow.model import load_model, save_model
    from nucleoflow.shipped import model_path

    model, metadata = load_model(model_path("dsb2018_unet"))
    cautions = {m: f"caution for {m} images" for m in ("fluorescence", "brightfield", "histology")}
    save_model(model, tmp_path / "model.pt", **{**metadata, "caution": cautions})
    result = cli("segment", "folder", "-o", "out_caution", "--model", str(tmp_path / "model.pt"), "--no-tta", "--threads", "2", cwd=crops)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(crops / "out_caution" / "summary.csv")
    assert (summary["caution"] == summary["modality"].map(cautions)).all()
    for modality, n in summary["modality"].value_counts().items():
        (line,) = [line for line in result.stderr.splitlines() if cautions[modality] in line]
        assert line.startswith(f"{n} image{'s are' if n > 1 else ' is'} {modality} ("), line
