"""A folder held by the run that writes it (folder_lock): a second run into it is refused at once,
naming the holder, and a run killed, even by kill -9, holds nothing (the system frees its flock)."""

import contextlib
import errno
import fcntl
import logging
import os
import socket
import threading
import time
from pathlib import Path

from .atomic import output_errors
from .clobber import _identity
from .errors import OutputError

log = logging.getLogger(__name__)

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
    with output_errors(folder):
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
