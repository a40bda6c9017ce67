"""Work done one item ahead in a background thread, so that it overlaps the caller's."""

from concurrent.futures import ThreadPoolExecutor


def ahead(make, items, name="nucleoflow-ahead"):
    """Yield make(item) for each item, the next one made in one background thread while the
    caller works on the current one. Items are made strictly in order, one at a time (a random
    generator used by `make` draws what it would draw inline); the thread ends with the
    generator, also when the caller stops early, and an error in `make` surfaces in the caller."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(1, thread_name_prefix=name) as pool:
        pending = pool.submit(make, items[0])
        for following in [*items[1:], None]:
            result = pending.result()
            if following is not None:
                pending = pool.submit(make, following)
            yield result
