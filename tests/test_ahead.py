"""ahead(): work made one item ahead in a background thread (image rows for inference,
training batches)."""

import threading

import numpy as np
import pytest

from nucleoflow.ahead import ahead


def test_items_are_made_ahead_in_order_and_the_thread_ends():
    def read(top):
        return top, threading.current_thread().name

    strips = list(ahead(read, [0, 96, 192], "nucleoflow-read"))
    assert [top for top, _ in strips] == [0, 96, 192]
    assert all(name.startswith("nucleoflow-read") for _, name in strips)
    early = ahead(read, [0, 96, 192], "nucleoflow-read")
    next(early)
    early.close()  # a caller that stops early (an error downstream) leaves no thread behind
    assert not [t for t in threading.enumerate() if t.name.startswith("nucleoflow-read")]


def test_a_failure_surfaces_in_the_caller():
    def read(top):
        if top:
            raise OSError(f"truncated at row {top}")
        return top

    with pytest.raises(OSError, match="truncated at row 96"):
        list(ahead(read, [0, 96]))


def test_a_shared_random_generator_draws_what_it_draws_inline():
    """Training batches draw crops from one generator: made ahead, they must be the same."""
    inline_rng, ahead_rng = np.random.default_rng(7), np.random.default_rng(7)
    inline = [inline_rng.random(3) for _ in range(5)]
    made = list(ahead(lambda _: ahead_rng.random(3), range(5)))
    np.testing.assert_array_equal(np.stack(made), np.stack(inline))
    assert list(ahead(lambda item: item, [])) == []
