"""Writing outputs atomically: a file under a temporary name, or a folder in a hidden staging
folder, renamed into place only when complete, so a failed job leaves nothing that looks
finished; a write the disk refuses (full, read-only, forbidden) is an OutputError saying what to do.
"""

import contextlib
import errno
import glob
import os
import secrets
import shutil
import socket
from pathlib import Path

import tifffile

from .errors import OutputError

_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
# Below this much free disk space nothing starts: outputs (and Snakemake's own metadata) would
# fail part-way with a bare OSError.
MIN_FREE_MB = 100


@contextlib.contextmanager
def output_errors(path):
    """Turn a failed write (full disk, read-only or forbidden folder) into a clear message."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(
            path,
            f"cannot be written ({exc.strerror})",
            "Free disk space, or write the outputs to a folder that is writable (for the workflow: run it where results/ is)",
        ) from exc


def check_writable(folder, setting, min_free_mb=MIN_FREE_MB):
    """Refuse, before any work (before a model loads), an output folder that cannot be made or
    written: a file, a path through a file, a read-only or forbidden folder, a disk with under
    min_free_mb MiB free; `setting` names what chose it. A folder not made yet is checked at its
    nearest existing parent, where it would be made; nothing is left behind."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    remedy = f"Set {setting} to a folder (created if missing) on a disk you can write to"
    if existing == folder and not folder.is_dir():
        raise OutputError(folder, "is a file, not a folder", f"Set {setting} to a folder (created if missing)")
    if not existing.is_dir():
        raise OutputError(folder, f"cannot be made: {existing} is a file, not a folder", remedy)
    try:
        os.remove(_new_file(existing, ".nucleoflow-write-check.", ".part"))
    except OSError as exc:
        where = "" if existing == folder else f", nor anything in {existing}, where it would be made"
        raise OutputError(folder, f"cannot be written ({exc.strerror}){where}", remedy) from exc
    free = shutil.disk_usage(existing).free
    if free < min_free_mb * 2**20:
        problem = f"is on a disk with only {free / 2**20:.1f} MiB free (at least {min_free_mb} MiB are needed)"
        raise OutputError(folder, problem, f"Free disk space, or set {setting} to a folder on another disk")


def _new_file(folder, prefix, suffix):
    """Create a new empty file of a unique name with mode 0666 less the process umask, as the
    output itself would get (mkstemp's 0600 would leave outputs private to their owner)."""
    while True:
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it into place only on success."""
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_file(path.parent, f".{path.name}.", ".part")
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _new_dir(folder, prefix, suffix):
    """Create a new folder of a unique name (mode 0777 less the process umask, as mkdir gives)."""
    while True:
        path = Path(folder) / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove_stale_staging(path):
    """Staging folders of `path` left by killed processes of this host (never a live one's)."""
    host = socket.gethostname()
    for old in path.parent.glob(f".{path.name}.*.part"):
        parts = old.name[len(path.name) + 2 : -len(".part")].rsplit(".", 2)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not _alive(int(parts[1])):
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(path):
    """Yield a hidden sibling folder that replaces `path` only if the block succeeds.

    Its name is unique to this process (.<name>.<host>.<pid>.<random>.part), so a rerun started
    while an earlier job still runs (after a killed Snakemake and --unlock; on SLURM jobs outlive
    the controller) never deletes the other's staging; stale ones of dead processes on this host
    are removed. The finished folder replaces `path` by renames (the old one moved aside first),
    so a reader never sees a half-written or half-deleted folder.
    """
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(path)
        tmp = _new_dir(path.parent, f".{path.name}.{socket.gethostname()}.{os.getpid()}.", ".part")
        try:
            yield tmp
            for _ in range(10):
                if path.exists() or path.is_symlink():
                    aside = _new_dir(path.parent, f".{path.name}.old.", ".part")
                    os.replace(path, aside / "old")
                    shutil.rmtree(aside, ignore_errors=True)
                try:
                    tmp.rename(path)
                    break
                except OSError as exc:  # another job put its own output there in between
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
        except OutputError as exc:  # name the output folder, not its hidden staging copy
            raise OutputError(path, exc.problem, exc.remedy) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def replace_into(paths, folder):
    """Move finished files and folders into `folder`, each replacing what had its name there: the
    old ones are all removed first, so a process killed in between leaves some missing, never
    old ones beside new ones."""
    targets = [Path(folder) / Path(path).name for path in paths]
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for path, target in zip(paths, targets):
        os.replace(path, target)


def append_line(path, line):
    """Append one line to an existing file in one write: a process killed meanwhile leaves the
    lines before it whole, and at most this one torn (readers skip it)."""
    data = (line + "\n").encode()
    with output_errors(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


def remove_temporaries(folder, names):
    """Remove what writers of `names` left in `folder` when they were killed: the hidden
    .<name>.*.part files and folders of atomic_path, staging_dir and Segmenter.to_files. Only for a
    caller that holds the folder alone (folder_lock): no writer of this package is at work in it."""
    for name in names:
        for path in Path(folder).glob(f".{glob.escape(name)}.*.part"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def write_tiff(path, array, **kwargs):
    """Write a zlib-compressed TIFF atomically."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression="zlib", **kwargs)
