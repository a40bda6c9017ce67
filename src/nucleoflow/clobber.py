"""Outputs that would destroy inputs or one another, refused before any work."""

import os
import unicodedata
from pathlib import Path

from .errors import InputError


def _identity(path):
    """(device, inode) of what `path` names, through symbolic links; None where nothing is."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_no_clobber(targets, inputs, clobber_remedy, clash_remedy):
    """Refuse, before any work, outputs that would destroy an input or one another.

    targets: (path, what) of every file or folder a run writes, `what` naming it in messages
    ("the labels of imgs/a.png"); a folder the run replaces whole is one target. inputs: the files
    and folders it reads. Refused with an InputError: a target that is an input or holds one
    (compared by device and inode: symbolic links, `..` and case-insensitive folders are seen
    through; a hard link, which a replace would spare, is refused too), naming the input and
    clobber_remedy; then two targets of one name (case and Unicode form folded), naming the file,
    both writers and clash_remedy.
    """
    targets = [(Path(path), what) for path, what in targets]
    existing = {}
    for path, what in targets:
        identity = _identity(path)
        if identity is not None:
            existing.setdefault(identity, (path, what))
    folders = {}  # identity of each folder above an input, shared by the inputs of one folder
    for given in inputs if existing else ():
        given = Path(given)
        hit = existing.get(_identity(given))
        if hit is not None:
            raise InputError(given, f"is an input and would be overwritten by {hit[1]} ({hit[0]})", clobber_remedy)
        for parent in given.resolve().parents:
            if parent not in folders:
                folders[parent] = _identity(parent)
            hit = existing.get(folders[parent])
            if hit is not None:
                raise InputError(given, f"is an input inside {hit[0]}, {hit[1]}", clobber_remedy)
    seen, resolved = {}, {}
    for path, what in targets:
        if path.parent not in resolved:  # most targets share a folder: resolved once
            resolved[path.parent] = path.parent.resolve()
        # One key for the names one file may go by: macOS and Windows folders ignore case and
        # Unicode form (A.tif and a.tif are one file there).
        key = unicodedata.normalize("NFC", str(resolved[path.parent] / path.name)).casefold()
        first = seen.setdefault(key, (path, what))
        if first[1] != what:
            raise InputError(path, f"would be written twice, as {first[1]} and as {what}", clash_remedy)


def check_outside_results(folder, setting, results="results"):
    """Refuse an input folder (`setting`: its config key) inside the workflow's output folder:
    Snakemake deletes the output folder of a rule before its job runs (results/segment), the
    images in it too. The Snakefile calls this before any job."""
    check_no_clobber(
        [(results, "the workflow's output folder, whose folders Snakemake deletes before the jobs that write them run")],
        [folder],
        f"Move the images out of {results}/ and set {setting} to their folder",
        "",
    )
