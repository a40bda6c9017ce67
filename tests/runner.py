"""Run the workflow from a private copy, so tests may touch its files and results freely."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(dest):
    for name in ("Snakefile", "workflow", "config", "envs", ".test", "src"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir, *args, check=True):
    """Run snakemake in workdir; the completed process has stdout and stderr in .stdout.

    The copy's own library (workdir/src) comes first on the path, as if installed from it, so a
    test may edit it without touching the installed package.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(workdir) / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-5000:]}")
    return result


def write_config(path, **sections):
    """A config overlay (`--configfile`) holding these sections; its path as a string."""
    path.write_text(yaml.safe_dump(sections))
    return str(path)
