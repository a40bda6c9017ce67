"""A folder whose files disagree (issue 23, class 2). A rerun stopped by Ctrl-C or kill -9 left
the last run's summary.csv beside its own label files, and so did a full disk while it wrote its
summary; two runs into one folder both ended well, the summary one's and label files the other's.
Now a run holds its folder (a second one is refused, naming the folder and the process), removes
the last summary before it writes any image and writes its own last, and the same command run
again finishes a stopped run, keeping the images it finished (segment.segment_images, journal.py).

Real `nucleoflow segment` processes over 30 committed DSB2018 crops, into a folder holding an
earlier run's outputs, as a user reruns with another setting (--min-area)."""

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from interrupts import default_sigint
from test_cli import cli
from test_no_clobber import contents

from nucleoflow.errors import OutputError
from nucleoflow.segment import Segmenter, segment_images

FAST = ("--no-tta", "--threads", "2", "--workers", "1")
MIN_AREA = 150  # the rerun's setting: drops the smaller nuclei, so most images' counts change
IMAGES = 30


@pytest.fixture(scope="module")
def root(crops_zip, tmp_path_factory):
    """imgs/: 30 committed crops; earlier/: a complete run over them with the default settings."""
    root = tmp_path_factory.mktemp("class2")
    (root / "imgs").mkdir()
    with zipfile.ZipFile(crops_zip) as archive:
        for name in sorted(n for n in archive.namelist() if n.startswith("images/"))[:IMAGES]:
            (root / "imgs" / Path(name).name).write_bytes(archive.read(name))
    earlier = cli("segment", "imgs", "-o", "earlier", *FAST, cwd=root)
    assert earlier.returncode == 0, earlier.stderr
    return root


@pytest.fixture
def out(root, tmp_path):
    """A copy of the earlier run's folder, for a rerun to write into."""
    return Path(shutil.copytree(root / "earlier", tmp_path / "out"))


def nuclei_in_files(out):
    """{image stem: nucleus count} of the label files in `out`, each checked against its own
    measurements (labels 1..N, N rows): an image's files are never of two runs (a kill between
    an image's renames may leave one of them missing, which its run's journal does not list)."""
    found = {}
    for path in sorted(out.glob("*.tif")):
        labels = tifffile.imread(path)
        if (out / f"{path.stem}.csv").exists():
            assert labels.max() == len(pd.read_csv(out / f"{path.stem}.csv")) == len(np.unique(labels)) - 1, path
        found[path.stem] = int(labels.max())
    return found


def summary_or_none(out):
    """{image stem: nuclei} of out/summary.csv, where there is one, after checking that it agrees
    with every label file there (the same images, the same counts), and its min_area."""
    if not (out / "summary.csv").exists():
        nuclei_in_files(out)
        return None, None
    summary = pd.read_csv(out / "summary.csv")
    listed = dict(zip(summary["image"].map(lambda name: Path(name).stem), summary["nuclei"].astype(int)))
    files = nuclei_in_files(out)
    disagree = sorted(stem for stem in files if listed.get(stem) != files[stem])
    assert not disagree, f"{len(disagree)} of {len(files)} label files disagree with summary.csv: {disagree[:5]}"
    assert sorted(listed) == sorted(files) and all((out / f"{stem}.csv").exists() for stem in listed)
    return listed, set(summary["min_area"])


def inodes(folder):
    found = {}
    for path in folder.glob("*.tif"):
        with contextlib.suppress(FileNotFoundError):  # replaced in between
            found[path.name] = path.stat().st_ino
    return found


def start(root, out, *args, log):
    """`nucleoflow segment imgs -o out` in its own process group (a terminal's Ctrl-C reaches the group)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", "import sys; from nucleoflow.cli import main; sys.exit(main())", "segment", "imgs", "-o", str(out), *FAST, *args]
    return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_sigint)


def wait_until_replaced(run, out, before, count, or_held=False):
    """Wait until the run has replaced `count` of the earlier label files (by inode), or with
    or_held until it holds the folder (its lock file is there)."""
    deadline = time.monotonic() + 300
    while sum(inodes(out).get(name) != inode for name, inode in before.items()) < count and not (or_held and (out / ".nucleoflow.lock").exists()):
        assert run.poll() is None, f"the run ended (exit {run.returncode}) before it replaced {count} label files"
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_a_rerun_stopped_part_way_leaves_no_summary_that_disagrees_and_the_same_command_finishes_it(root, out, tmp_path, how):
    imgs = contents(root / "imgs")
    before = inodes(out)
    assert len(before) == IMAGES and summary_or_none(out)[1] == {5}  # the earlier run: the model's tuned min_area
    with open(tmp_path / "stopped.log", "w") as log:
        run = start(root, out, "--min-area", str(MIN_AREA), log=log)
        wait_until_replaced(run, out, before, 3)
        if how == "ctrl-c":
            os.killpg(run.pid, signal.SIGINT)
        else:
            os.kill(run.pid, signal.SIGKILL)
        code = run.wait(timeout=120)
    said = (tmp_path / "stopped.log").read_text()
    replaced = [name for name, inode in inodes(out).items() if before.get(name) != inode]
    assert 3 <= len(replaced) < IMAGES, f"the run was not stopped part way: {said}"
    assert summary_or_none(out) == (None, None)  # the earlier summary went before the first label file
    assert code == (130 if how == "ctrl-c" else -signal.SIGKILL), said
    if how == "ctrl-c":
        assert f"interrupted: {out} holds the images labelled so far and no summary; the same command labels the others" in said

    again = cli("segment", "imgs", "-o", str(out), *FAST, "--min-area", str(MIN_AREA), cwd=root)
    assert again.returncode == 0, again.stderr
    kept = int(again.stderr.split(f"{out}: keeping ")[1].split(" image")[0])
    assert 3 <= kept < IMAGES  # the images the stopped run finished, not labelled again
    listed, min_areas = summary_or_none(out)
    assert len(listed) == IMAGES and min_areas == {MIN_AREA}  # every image at the rerun's setting
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no journal, lock or temporary left
    assert contents(root / "imgs") == imgs


def test_a_second_run_into_a_folder_being_written_is_refused_at_once(root, out, tmp_path):
    imgs = contents(root / "imgs")
    before = inodes(out)
    with open(tmp_path / "first.log", "w") as log:
        first = start(root, out, "--min-area", str(MIN_AREA), log=log)
        wait_until_replaced(first, out, before, 1, or_held=True)  # held before it loads the model
        second = cli("segment", "imgs", "-o", str(out), *FAST, cwd=root)
        assert second.returncode == 1, second.stderr
        assert first.poll() is None, "the first run ended before the second was refused: nothing was tested"
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nucleoflow: error: {out}: is being written by another nucleoflow process (process {first.pid} on ")
    assert last.endswith("). Wait for it to end, or write to another folder")
    listed, min_areas = summary_or_none(out)
    assert len(listed) == IMAGES and min_areas == {MIN_AREA}  # all the first run's
    assert contents(root / "imgs") == imgs


def test_a_full_disk_writing_the_summary_leaves_none_and_the_rerun_writes_it(root, out, monkeypatch, caplog):
    images = sorted((root / "imgs").iterdir())
    imgs = contents(root / "imgs")
    segmenter = Segmenter("dsb2018_unet", threads=2, tta=False, min_area=MIN_AREA)
    to_csv = pd.DataFrame.to_csv

    def full_disk(frame, path=None, *args, **kwargs):  # the summary's temporary file fills the disk
        if path is not None and Path(path).name.startswith(".summary.csv."):
            Path(path).write_text("image,nuclei\n1ee4a1")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return to_csv(frame, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(OutputError, match=r"summary.csv: cannot be written \(No space left on device\). Free disk space"):
        segment_images(segmenter, images, out)
    monkeypatch.undo()
    assert summary_or_none(out) == (None, None)  # neither the earlier summary nor a truncated one
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    segment_images(segmenter, images, out)
    assert f"{out}: keeping {IMAGES} images of {IMAGES}" in caplog.text  # none labelled again
    listed, min_areas = summary_or_none(out)
    assert len(listed) == IMAGES and min_areas == {MIN_AREA}
    assert contents(root / "imgs") == imgs


def test_an_image_written_alone_is_refused_while_a_run_holds_the_folder(root, out):
    from nucleoflow.lock import folder_lock  # (new with class 2)

    held, release = threading.Event(), threading.Event()

    def run():  # another thread's run, as another process's
        with folder_lock(out):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        held.wait(60)
        earlier = contents(out)
        image = sorted((root / "imgs").iterdir())[0]
        with pytest.raises(OutputError, match=re.escape(f"{out}: is being written by another nucleoflow process (process {os.getpid()} on ")):
            Segmenter("dsb2018_unet", tta=False).to_files(image, out)
        assert contents(out) == earlier
    finally:
        release.set()
        thread.join()
    assert not (out / ".nucleoflow.lock").exists()
