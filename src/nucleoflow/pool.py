"""The postprocess in worker processes beside the network: an image's blocks, a folder's images.

Results equal one process's by construction: the same function on the same inputs, the
results taken in the same order. Workers are spawned from a context object, never forked (the
parent holds the inference engine's threads, whose locks a fork would copy mid-use), and the
process-wide start method is left alone; each pool lives for one call and is shut down when
the call ends, by error or interrupt too. As for any multiprocessing code, a script calling
these with more than one worker needs an `if __name__ == "__main__":` guard: spawned workers
import the main script.

A block's probabilities (16 MB at the default block and context) go to its worker through
shared memory and its labels come back the same way: pickled through a pipe, they took about
as long as labelling them.
"""

import contextlib
import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.shared_memory import SharedMemory

import numpy as np

LABELS = np.dtype(np.uint32)


@contextlib.contextmanager
def process_pool(workers):
    """A pool of `workers` spawned processes, shut down on leaving (work not started cancelled)."""
    unset = multiprocessing.get_start_method(allow_none=True) is None
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if unset:  # spawning fixes the process-wide default as a side effect (spawn.get_preparation_data)
            multiprocessing.set_start_method(None, force=True)


def ordered_map(fn, jobs, workers=1):
    """Yield fn(*job) for each job, in order: computed here with 1 worker, else in a pool."""
    if workers == 1:
        for job in jobs:
            yield fn(*job)
        return
    with process_pool(workers) as pool:
        for future in [pool.submit(fn, *job) for job in jobs]:
            yield future.result()


@contextlib.contextmanager
def _shared_buffers():
    """A list to put SharedMemory buffers in, all of them closed and removed on leaving."""
    buffers = []
    try:
        yield buffers
    finally:
        for memory in buffers:
            memory.close()
            memory.unlink()


def _label_shared(label, name, shape, dtype):
    """Worker: label(probabilities) for the (shape, dtype) array in shared memory `name`,
    written over it as uint32 (the buffer is sized for both)."""
    memory = SharedMemory(name)
    labels = label(np.ndarray(shape, dtype, memory.buf))
    np.ndarray(labels.shape, LABELS, memory.buf)[:] = labels
    memory.close()


def label_blocks(label, blocks, workers=1, ahead=1, max_pixels=0):
    """Yield (key, label(probs)) for each (key, parts) of `blocks`, in order: probs is the parts
    (probability arrays (n_classes, h, w)) joined along rows; label returns uint32 (h, w) labels.

    workers 1: labelled here, one block after the other. More: in a pool of that many processes
    (label must be picklable), up to `ahead` blocks at a time, each in a shared buffer sized for
    max_pixels pixels (at least any block's), while this process goes on pulling blocks.
    """
    if workers == 1:
        for key, parts in blocks:
            yield key, label(np.concatenate(parts, axis=1))
        return
    with _shared_buffers() as buffers, process_pool(workers) as pool:  # the pool stops first
        free, pending = [], deque()

        def oldest():
            key, memory, (_, height, width), future = pending.popleft()
            future.result()
            free.append(memory)
            return key, np.ndarray((height, width), LABELS, memory.buf).copy()

        for key, parts in blocks:
            if len(pending) == ahead:
                yield oldest()
            shape, dtype = (parts[0].shape[0], sum(p.shape[1] for p in parts), parts[0].shape[2]), parts[0].dtype
            if not free:
                buffers.append(SharedMemory(create=True, size=max_pixels * max(shape[0] * dtype.itemsize, LABELS.itemsize)))
                free.append(buffers[-1])
            memory = free.pop()
            np.concatenate(parts, axis=1, out=np.ndarray(shape, dtype, memory.buf))
            pending.append((key, memory, shape, pool.submit(_label_shared, label, memory.name, shape, dtype)))
        while pending:
            yield oldest()
