"""The `nucleoflow segment` command, run as users run it, on committed DSB2018 crops."""

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import tifffile

from nucleoflow.io import read_image
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
