"""The postprocess in worker processes beside the network: an image's blocks, a folder's images.

Results equal one process's by construction: the same function on the same inputs, the
results taken in the same order. Workers are spawned from a context object, never forked (the
parent holds the inference engine's threads, whose locks a fork would copy mid-use), and the
process-wide start method is left alone. As for any multiprocessing code, a script using more
than one worker needs an `if __name__ == "__main__":` guard: spawned workers import the main
script. Starting them takes seconds (a fresh interpreter importing that script and the
postprocess), so a Workers object keeps them from one image to the next until it is closed.

A block's probabilities (16 MB at the default block and context) go to its worker through
shared memory and its labels come back the same way: pickled through a pipe, sending one took
48 ms on the 2-core development machine, where labelling it took 62 ms. Where shared memory
runs short (a Docker container has 64 MB by default), blocks that find no buffer are labelled
in this process.
"""

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, wait
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
LABELS = np.dtype(np.uint32)
SHM = Path("/dev/shm")  # where SharedMemory lives on Linux


def label_here(label, blocks):
    """Yield (key, label(probs, key)) for each (key, parts) of `blocks`, in this process: probs
    is the parts (probability arrays (n_classes, h, w)) joined along rows; label returns
    (uint32 labels (h, w), notes)."""
    for key, parts in blocks:
        yield key, label(np.concatenate(parts, axis=1), key)


class Workers:
    """`count` processes that label beside this one, started at first use, stopped by close()
    (or on leaving a with block; work not started is cancelled); Workers(1) labels here."""

    def __init__(self, count=1):
        if count < 1:
            raise ValueError(f"workers ({count}) must be at least 1")
        self.count, self._pool, self._start_method_unset, self._short_of_shm = count, None, False, False
        # Free shared buffers, kept for the next blocks and images: fresh pages cost page faults
        # (11 ms for 16 MB here, a reused buffer 1 ms); removed by close() or when this is dropped.
        self._buffers = []
        weakref.finalize(self, _remove, self._buffers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            if self._start_method_unset:  # spawning fixed the process-wide default (spawn.get_preparation_data asks for it)
                multiprocessing.set_start_method(None, force=True)
        _remove(self._buffers)

    def _started(self):
        if self._pool is None:
            self._start_method_unset = multiprocessing.get_start_method(allow_none=True) is None
            self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_setup)
        return self._pool

    def _buffer(self, nbytes):
        """A free shared buffer of at least nbytes, or None where shared memory has no room left."""
        while self._buffers:
            memory = self._buffers.pop()
            if memory.size >= nbytes:
                return memory
            _remove([memory])
        free = shutil.disk_usage(SHM).free if SHM.is_dir() else nbytes  # macOS has no such file system to fill
        if free >= nbytes:
            return SharedMemory(create=True, size=nbytes)
        if not self._short_of_shm:  # past its end (64 MB in a Docker container by default) a write would kill us (SIGBUS)
            log.warning("%s has %d MB free: blocks finding no free buffer are labelled in this process; give it more (docker --shm-size)", SHM, free >> 20)
            self._short_of_shm = True
        return None

    def map(self, fn, jobs):
        """Yield fn(*job) for each job, in order (fn must be picklable with more than one worker)."""
        if self.count == 1:
            for job in jobs:
                yield fn(*job)
            return
        pool = self._started()
        for future in [pool.submit(fn, *job) for job in jobs]:
            yield future.result()

    def label_blocks(self, label, blocks, ahead, max_pixels):
        """label_here's results, the blocks labelled in the workers (label must be picklable), up
        to `ahead` at a time while this process goes on pulling blocks (predicting); each in a
        shared buffer sized for max_pixels pixels (at least any block's probabilities' and labels')."""
        if self.count == 1:
            yield from label_here(label, blocks)
            return
        if self._pool is None:
            for _ in range(self.count):  # start the workers and import label's module there while the first blocks are predicted
                self._started().submit(callable, label)
        pending = deque()
        try:
            for key, parts in blocks:
                if len(pending) == ahead:
                    yield self._result(*pending.popleft())
                shape, dtype = (parts[0].shape[0], sum(p.shape[1] for p in parts), parts[0].shape[2]), parts[0].dtype
                memory = self._buffer(max_pixels * max(shape[0] * dtype.itemsize, LABELS.itemsize))
                if memory is None:
                    pending.append((key, None, shape, _labelled_here(label, parts, key)))
                    continue
                np.concatenate(parts, axis=1, out=np.ndarray(shape, dtype, memory.buf))
                pending.append((key, memory, shape, self._pool.submit(_label_shared, label, key, memory.name, shape, dtype)))
            while pending:
                yield self._result(*pending.popleft())
        finally:  # by error or interrupt: the blocks not started are cancelled, the running ones awaited
            wait([future for *_, future in pending if not future.cancel()])  # (cancelled ones never finish)
            self._buffers += [memory for _, memory, _, _ in pending if memory is not None]

    def _result(self, key, memory, shape, future):
        """(key, (labels, notes)) of a block sent to a worker (its buffer free again) or labelled here."""
        if memory is None:
            return key, future.result()
        try:
            labels_shape, notes = future.result()
            return key, (np.ndarray(labels_shape, LABELS, memory.buf).copy(), notes)
        finally:
            self._buffers.append(memory)


@contextlib.contextmanager
def workers_for(workers):
    """A Workers: `workers` itself, or (a count) one of that many for the with block."""
    if isinstance(workers, Workers):
        yield workers
        return
    with Workers(workers) as own:
        yield own


def _labelled_here(label, parts, key):
    """A finished future of label(probs, key), for a block labelled in this process."""
    future = Future()
    future.set_result(label(np.concatenate(parts, axis=1), key))
    return future


def _remove(buffers):
    """Close and remove the SharedMemory buffers of a list, emptying it."""
    while buffers:
        memory = buffers.pop()
        memory.close()
        memory.unlink()


def _worker_setup():
    """Worker: leave Ctrl-C to the main process, which stops the pool (no traceback from each
    worker), and exit when the main process dies, even killed (else idle workers wait forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sentinel = multiprocessing.parent_process().sentinel
    threading.Thread(target=lambda: multiprocessing.connection.wait([sentinel]) and os._exit(1), daemon=True).start()


def _label_shared(label, key, name, shape, dtype):
    """Worker: label(probabilities, key) for the (shape, dtype) array in shared memory `name`;
    the labels are written over it as uint32 (the buffer is sized for both), their shape and the
    notes returned (a zoomed block's labels are mapped back to the image's pixels: another shape)."""
    memory = SharedMemory(name)
    labels, notes = label(np.ndarray(shape, dtype, memory.buf), key)
    np.ndarray(labels.shape, LABELS, memory.buf)[:] = labels
    memory.close()
    return labels.shape, notes
