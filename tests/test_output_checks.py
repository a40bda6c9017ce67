"""Output folders that cannot take the outputs (issue 23, class 7): a read-only folder, -o naming a
file or a path through one, a full disk ended in a traceback after the model loaded. They are
refused before it loads (io.check_writable), naming the folder and what to do. The model given
here does not exist, so a run that got as far as loading it would say so instead.

As root, a read-only folder and a full disk are real file systems: a tmpfs mounted read-only, or
1 MiB small, in a private mount namespace (unshare); otherwise the folder is made read-only
by its mode, and the full disk is not planted."""

import os
import shutil
import subprocess
import sys

import pytest
from lying import FLUORESCENCE, crop
from PIL import Image
from test_no_clobber import contents

from nucleoflow.errors import OutputError
from nucleoflow.segment import segment_folder

MAIN = "import sys; from nucleoflow.cli import main; sys.exit(main())"


def _can_mount():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


MOUNTS = _can_mount()


def cli(args, cwd, tmpfs=None):
    """The command in a fresh process; tmpfs (folder, mount options): run with a tmpfs mounted
    there, seen by this command only."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", MAIN, *args]
    if tmpfs:
        folder, options = tmpfs
        command = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o {options} tmpfs "$0" && exec "$@"', str(folder), *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def images(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(crop(FLUORESCENCE)).save(tmp_path / "imgs" / "a.png")
    return tmp_path / "imgs"


def refused(result):
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "no_model.pt" not in result.stderr  # refused before the model is looked for
    return result.stderr.strip().splitlines()[-1]


def test_a_read_only_output_folder_is_refused_before_the_model_loads(tmp_path, images):
    out = tmp_path / "out"
    out.mkdir()
    if MOUNTS:
        result, why = cli(["segment", "imgs", "-o", "out", "--model", "no_model.pt"], tmp_path, (out, "ro,size=1m")), "Read-only file system"
    elif os.geteuid() != 0:
        out.chmod(0o555)
        result, why = cli(["segment", "imgs", "-o", "out", "--model", "no_model.pt"], tmp_path), "Permission denied"
    else:
        pytest.skip("root without unshare: no folder here is read-only to this process")
    assert refused(result) == f"nucleoflow: error: out: cannot be written ({why}). Set -o to a folder (created if missing) on a disk you can write to"


def test_an_output_folder_through_a_file_is_refused_before_the_model_loads(tmp_path, images):
    """-o naming a file was refused already; a folder below a file was a traceback (mkdir)."""
    before = contents(tmp_path)
    line = refused(cli(["segment", "imgs", "-o", "imgs/a.png/labels", "--model", "no_model.pt"], tmp_path))
    remedy = "Set -o to a folder (created if missing)"
    assert line == f"nucleoflow: error: imgs/a.png/labels: cannot be made: imgs/a.png is a file, not a folder. {remedy} on a disk you can write to"
    line = refused(cli(["segment", "imgs", "-o", "imgs/a.png", "--model", "no_model.pt"], tmp_path))
    assert line == f"nucleoflow: error: imgs/a.png: is a file, not a folder. {remedy}"
    with pytest.raises(OutputError, match="cannot be made: .*a.png is a file, not a folder"):
        segment_folder(images, images / "a.png" / "labels", "no_model.pt")
    assert contents(tmp_path) == before


@pytest.mark.skipif(not MOUNTS, reason="a full disk is planted as a 1 MiB tmpfs: needs root and unshare")
def test_a_full_disk_is_refused_before_the_model_loads(tmp_path, images):
    out = tmp_path / "out"
    out.mkdir()
    line = refused(cli(["segment", "imgs", "-o", "out/labels", "--model", "no_model.pt"], tmp_path, (out, "size=1m")))
    assert line == (
        "nucleoflow: error: out/labels: is on a disk with only 1.0 MiB free (at least 100 MiB are needed). "
        "Free disk space, or set -o to a folder on another disk"
    )
