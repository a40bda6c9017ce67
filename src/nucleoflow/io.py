"""Writing outputs atomically (temporary name, then rename), logging, and the short forms of
reading (every read goes through reader.py: open_image / open_bytes / RegionSource)."""

import contextlib
import errno
import logging
import os
import secrets
import shutil
import socket
import sys
import unicodedata
from pathlib import Path

import tifffile

from .errors import InputError, OutputError, UserError
from .reader import IMAGE_SUFFIXES, MAX_PIXELS, RegionSource, open_bytes, open_image  # noqa: F401 (the reading API, re-exported)

_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
# Below this much free disk space nothing starts: outputs (and Snakemake's own metadata) would
# fail part-way with a bare OSError.
MIN_FREE_MB = 100


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
    """Move finished files and folders into `folder`, each replacing what had its name there."""
    for path in paths:
        target = Path(folder) / Path(path).name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)


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
