"""Writing outputs atomically (temporary name, then rename), logging, and the short forms of
reading (every read goes through reader.py: open_image / open_bytes / RegionSource)."""

import contextlib
import errno
import fcntl
import glob
import logging
import os
import secrets
import shutil
import socket
import sys
import threading
import time
import unicodedata
from pathlib import Path

import tifffile

from .errors import InputError, OutputError, UserError
from .reader import IMAGE_SUFFIXES, MAX_PIXELS, RegionSource, open_bytes, open_image  # noqa: F401 (the reading API, re-exported)

log = logging.getLogger(__name__)

_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


# Messages of expected errors, one file per failed job, that the Snakefile prints last.
ERRORS_DIR = Path(".snakemake") / "nucleoflow_errors"


def expected_error(value, tb=None):
    """Whether an exception is one the user must act on (its message says what to do): ours, or
    a ValueError raised by this package's own checks."""
    if isinstance(value, UserError):
        return True
    if isinstance(value, ValueError) and tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        return Path(tb.tb_frame.f_code.co_filename).resolve().parent == Path(__file__).resolve().parent
    return False


def setup_logging(log_path, mode="w"):
    """Send log records of a workflow script to its log file (and stderr). An uncaught error's
    traceback goes to the log file only; an expected error's message is printed last on stderr
    and kept for the Snakefile's closing report (ERRORS_DIR); an unexpected one's traceback is
    printed too."""
    handler = logging.FileHandler(log_path, mode=mode)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)

    def log_uncaught(kind, value, tb):
        record = logging.getLogger("nucleoflow").makeRecord("nucleoflow", logging.ERROR, __file__, 0, "failed: %s", (value,), (kind, value, tb))
        handler.handle(record)  # the traceback: the rule's log only
        if not expected_error(value, tb):
            sys.__excepthook__(kind, value, tb)
            return
        message = f"{value}" if isinstance(value, UserError) else f"{kind.__name__}: {value}"
        try:
            ERRORS_DIR.mkdir(parents=True, exist_ok=True)
            (ERRORS_DIR / f"{os.getpid()}.txt").write_text(f"{message}\n(details: {log_path})\n")
        except OSError:
            pass  # a full disk: the message still reaches stderr
        sys.stderr.write(f"\nnucleoflow: error: {message}\n(details: {log_path})\n")

    sys.excepthook = log_uncaught


@contextlib.contextmanager
def _output_errors(path):
    """Turn a failed write (full disk, read-only or forbidden folder) into a clear message."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(
            path,
            f"cannot be written ({exc.strerror})",
            "Free disk space, or run the workflow where the results folder is writable",
        ) from exc


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
    with _output_errors(path):
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
    with _output_errors(path):
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
    with _output_errors(path):
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


# The lock file of a folder that a run writes (folder_lock), held while it writes there.
LOCK = ".nucleoflow.lock"
# (thread, device, inode) of the folders this process holds: a run's own writes pass its lock.
_HELD = set()


@contextlib.contextmanager
def folder_lock(folder, shared=False):
    """Hold `folder` (created if missing) for writing, or refuse at once with an OutputError naming
    it and the process that holds it: exclusive for a run that writes a folder's summary (one at a
    time), shared for writers of single images (Segmenter.to_files: many side by side, none while
    a run holds it). A nested hold of a folder this thread holds passes.

    flock on a lock file (LOCK) in the folder: the system frees it when its process ends, even by
    kill -9, so no lock outlives its run; the last holder removes the file, and a folder it
    created is removed again if it is left empty (a run refused before it wrote anything)."""
    folder = Path(folder)
    with _output_errors(folder):
        made = [path for path in (folder, *folder.parents) if not os.path.lexists(path)]
        folder.mkdir(parents=True, exist_ok=True)
        key = (threading.get_ident(), *_identity(folder))
        fd = None if key in _HELD else _lock(folder, shared)
    if key in _HELD:
        yield
        return
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        _unlock(folder / LOCK, fd, shared)
        for path in made:  # deepest first; stops at the first that is not empty
            try:
                path.rmdir()
            except OSError:
                break


def _lock(folder, shared):
    """The open lock file of `folder`, locked (None on a file system without locks)."""
    path = folder / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
            os.close(fd)
            remedy = "Wait for it to end, or write to another folder"
            raise OutputError(folder, f"is being written by another nucleoflow process{f' ({holder})' if holder else ''}", remedy) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            log.warning("%s: its file system has no locks: a second run writing into it at the same time is not refused", folder)
            return None
        st = os.fstat(fd)
        if _identity(path) == (st.st_dev, st.st_ino):
            break
        os.close(fd)  # its holder removed it on leaving: lock the one there now
    try:
        os.ftruncate(fd, 0)  # a killed run's words
        if not shared:  # what a refused run is told
            os.write(fd, f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    except OSError:
        os.close(fd)
        raise
    return fd


def _unlock(path, fd, shared):
    """Remove the lock file (the last of shared holders) and let go of it."""
    if fd is None:
        return
    try:
        if shared:  # exclusive only where no other holder is left
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_tiff(path, array, **kwargs):
    """Write a zlib-compressed TIFF atomically."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression="zlib", **kwargs)


def decode_image(data, name, channel=None):
    """The network channels, (H, W, 1 or 3), of PNG/JPEG/TIFF bytes (reader.open_bytes: the
    file's own metadata, the size limits); `name` is used for the format and in messages."""
    return open_bytes(data, name, channel).read_all()


def read_image(path, channel=None):
    """The network channels, (H, W, 1 or 3), of an image file (reader.open_image)."""
    with open_image(path, channel) as source:
        return source.read_all()


load_hwc = read_image


def to_hwc(array, name, channel=None):
    """A bare array, (H, W) or (H, W, C), as the network's (H, W, 1 or 3) (reader.RegionSource:
    3 channels are RGB; other counts need `channel`)."""
    return RegionSource(array, name, channel=channel).read_all()
