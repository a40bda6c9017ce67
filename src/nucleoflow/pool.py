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
48 ms on the 2-core development machine, where labelling it took 62 ms.
"""

import contextlib
import multiprocessing
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing.shared_memory import SharedMemory

import numpy as np

LABELS = np.dtype(np.uint32)


def label_here(label, blocks):
    """Yield (key, label(probs)) for each (key, parts) of `blocks`, in this process: probs is
    the parts (probability arrays (n_classes, h, w)) joined along rows."""
    for key, parts in blocks:
        yield key, label(np.concatenate(parts, axis=1))


class Workers:
    """`count` processes that label beside this one, started at first use, stopped by close()
    (or on leaving a with block; work not started is cancelled); Workers(1) labels here."""

    def __init__(self, count=1):
        if count < 1:
            raise ValueError(f"workers ({count}) must be at least 1")
        self.count, self._pool, self._start_method_unset = count, None, False
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
            self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _buffer(self, nbytes):
        """A free shared buffer of at least nbytes."""
        while self._buffers:
            memory = self._buffers.pop()
            if memory.size >= nbytes:
                return memory
            _remove([memory])
        return SharedMemory(create=True, size=nbytes)

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
        shared buffer sized for max_pixels pixels (at least any block's)."""
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
                np.concatenate(parts, axis=1, out=np.ndarray(shape, dtype, memory.buf))
                pending.append((key, memory, shape, self._pool.submit(_label_shared, label, memory.name, shape, dtype)))
            while pending:
                yield self._result(*pending.popleft())
        finally:  # by error or interrupt: the blocks not started are cancelled, the running ones awaited
            wait([future for *_, future in pending if not future.cancel()])  # (cancelled ones never finish)
            self._buffers += [memory for _, memory, _, _ in pending]

    def _result(self, key, memory, shape, future):
        """(key, labels) of a block sent to a worker; its buffer is free again."""
        try:
            future.result()
            return key, np.ndarray(shape[1:], LABELS, memory.buf).copy()
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


def _remove(buffers):
    """Close and remove the SharedMemory buffers of a list, emptying it."""
    while buffers:
        memory = buffers.pop()
        memory.close()
        memory.unlink()


def _label_shared(label, name, shape, dtype):
    """Worker: label(probabilities) for the (shape, dtype) array in shared memory `name`,
    written over it as uint32 (the buffer is sized for both)."""
    memory = SharedMemory(name)
    labels = label(np.ndarray(shape, dtype, memory.buf))
    np.ndarray(labels.shape, LABELS, memory.buf)[:] = labels
    memory.close()
