"""Images larger than memory: lazy region reads, block-wise labelling, labels streamed to disk.

Each block is predicted and labelled together with `context` pixels of the image around it and
keeps only the nuclei whose bounding-box centre lies inside it (StarDist's predict_instances_big),
so a nucleus crossing a block border gets one label, from one block, whole. `context` must exceed
the radius of the largest nucleus plus the few pixels where the network sees the block edge.
Memory is bounded by the block size and one band of label rows, whatever the image size.
Images come in as reader.RegionSource (reader.open_image for files: channels, pixel size, limits).
"""

import contextlib
import functools
import logging

import numpy as np
from scipy import ndimage as ndi

from .errors import counted
from .formats import TIFF_TILE
from .infer import predict_rows
from .normalize import apply_range
from .options import Thresholds, Tiling
from .pool import label_here, workers_for
from .postprocess import instances
from .shards import part_rows

log = logging.getLogger(__name__)


def _label_block(probs, block, thresholds, shape):
    """Labels of a block's probabilities and its own objects (owned)."""
    return owned(instances(probs, thresholds), block, shape)


def owned(labels, block, shape):
    """A block's labels and its own objects, those whose bbox centre lies in its core:
    (labels, [(index, bbox, cut)]); cut: touching an edge of the block's extent inside the
    image (`shape`), so cut by it. block: (core, extent), each (y0, y1, x0, x1)."""
    (cy0, cy1, cx0, cx1), (ey0, ey1, ex0, ex1) = block
    top, left, bottom, right = ey0 > 0, ex0 > 0, ey1 < shape[0], ex1 < shape[1]
    owned = []
    for index, box in enumerate(ndi.find_objects(labels), 1):
        if box is None:
            continue
        ys, xs = box
        if cy0 <= ey0 + (ys.start + ys.stop - 1) / 2 < cy1 and cx0 <= ex0 + (xs.start + xs.stop - 1) / 2 < cx1:
            cut = (top and ys.start == 0) or (left and xs.start == 0) or (bottom and ys.stop == labels.shape[0]) or (right and xs.stop == labels.shape[1])
            owned.append((index, box, cut))
    return labels, owned


def _paste_owned(band, band_top, labels, owned, origin, next_label):
    """Copy a block's own objects (_label_block) from `labels` (top-left pixel `origin` of the
    image) into free pixels of `band`; returns the next label and how many pasted were cut."""
    ey0, ex0 = origin
    cut = 0
    for index, (ys, xs), is_cut in owned:
        target = band[ey0 - band_top + ys.start : ey0 - band_top + ys.stop, ex0 + xs.start : ex0 + xs.stop]
        mask = (labels[ys, xs] == index) & (target == 0)
        if mask.any():
            target[mask] = next_label
            next_label += 1
            cut += is_cut
    return next_label, cut


def label_bands(source, engine, tiling=Tiling(), thresholds=Thresholds(), tiles=None, on_block=None, workers=1, part=(1, 1)):
    """Yield (top row, uint32 label rows) of the whole image's instance labels, top to bottom.

    Probabilities stream in full-width bands on the whole image's tile grid (predict_rows), so
    they equal whole-image prediction; only labelling is cut into blocks. Bands are multiples of
    TIFF_TILE rows (the last one excepted), so they can be written as tiles. tiles: a tqdm bar
    (or None) counting the network's tiles. on_block(labels, (y0, x0)), if given, gets each
    block's own nuclei once they are final: a region of the image (top-left pixel (y0, x0))
    holding them whole, other pixels 0. workers: a count of processes that label blocks while
    the network predicts the next ones, or a pool.Workers that keeps them between calls; the
    labels are the same for any number.

    part (k, n): only the k-th of n bands of block rows (shards.split_block_rows), predicting only the
    rows they see; bands run from PartRows.top to .bottom, their nuclei numbered from 1, knowing
    nothing of the band above (shards.py joins the parts).
    """
    width = source.width
    span = part_rows(source.height, width, engine, tiling, part)

    def read(y0, y1):  # normalised rows, read and scaled a column chunk at a time to bound temporaries
        rows = np.empty((3, y1 - y0, width), np.float32)
        for x in range(0, width, 2048):
            rows[:, :, x : x + 2048] = apply_range(source.read(y0, y1, x, min(x + 2048, width)), source.appearance)
        return rows

    bands = predict_rows(read, source.height, width, engine, tiling, tiles, rows=(span.first, span.bottom))
    yield from label_probability_bands(bands, (source.height, width), tiling, thresholds, on_block, workers, source.name, span)


def _block_grid(shape, block, context, rows):
    """(core (y0, y1, x0, x1), extent (y0, y1, x0, x1): the core with `context` around it) of
    every block of the block rows [r0, r1), row by row."""
    height, width = shape
    for cy0 in range(rows[0] * block, min(rows[1] * block, height), block):
        cy1 = min(cy0 + block, height)
        for cx0 in range(0, width, block):
            cx1 = min(cx0 + block, width)
            yield (cy0, cy1, cx0, cx1), (max(0, cy0 - context), min(height, cy1 + context), max(0, cx0 - context), min(width, cx1 + context))


def _block_probabilities(bands, grid):
    """((core, extent), parts) for each block of `grid`: parts, the probabilities over its
    extent, in pieces of the (top, (n_classes, h, width)) bands to join along rows."""
    held, held_end = [], 0  # the bands still needed
    for core, (ey0, ey1, ex0, ex1) in grid:
        while held_end < ey1:
            top, probs = next(bands)
            held.append((top, probs))
            held_end = top + probs.shape[1]
        held = [(top, p) for top, p in held if top + p.shape[1] > ey0]  # blocks come row by row: ey0 never falls
        yield (core, (ey0, ey1, ex0, ex1)), [p[:, max(ey0 - top, 0) : ey1 - top, ex0:ex1] for top, p in held if top < ey1]


def label_probability_bands(bands, shape, tiling=Tiling(), thresholds=Thresholds(), on_block=None, workers=1, name="image", rows=None):
    """label_bands from the image's probabilities: (top, (n_classes, h, width)) bands, top to
    bottom, of an image of `shape` (height, width); rows: the PartRows of a part (label_bands')."""
    height, width = shape
    block, context = tiling.block, tiling.context
    rows = rows or part_rows(height, width, None, tiling)
    grid = list(_block_grid(shape, block, context, rows.blocks))
    label, blocks = functools.partial(_label_block, thresholds=thresholds, shape=shape), _block_probabilities(bands, grid)
    with workers_for(workers) as pool:
        # Up to a block row and two blocks per worker in flight: the next row is predicted while the
        # last one is labelled, and each worker has its next block waiting.
        ahead, max_pixels = -(-width // block) + 2 * pool.count, min(block + 2 * context, height) * min(block + 2 * context, width)
        labelled = pool.label_blocks(label, blocks, ahead, max_pixels) if len(grid) > 1 else label_here(label, blocks)
        with contextlib.closing(labelled):  # on an error, the blocks in the workers are settled before the workers stop
            yield from _paste_blocks(labelled, shape, context, on_block, name, rows, min(rows.blocks[1] * block, height))


def _paste_blocks(labelled, shape, context, on_block, name, rows, end):
    """label_bands' rows from ((core, extent), _label_block's (labels, owned)) of each block of
    `rows` (PartRows, its block rows ending at image row `end`), in raster order."""
    height, width = shape
    band, band_top, next_label, cut = np.zeros((0, width), np.uint32), rows.top, 1, 0
    for ((_, cy1, cx0, cx1), (ey0, ey1, ex0, ex1)), (labels, owned) in labelled:
        if cx0 == 0:  # a new block row: its extent joins the band
            band = np.concatenate([band, np.zeros((ey1 - band_top - len(band), width), np.uint32)])
        first = next_label
        next_label, n_cut = _paste_owned(band, band_top, labels, owned, (ey0, ex0), next_label)
        cut += n_cut
        if on_block is not None and next_label > first:  # labels count up: the block's own are >= first
            region = band[ey0 - band_top : ey1 - band_top, ex0:ex1]
            on_block(np.where(region >= first, region, 0), (ey0, ex0))
        if cx1 < width:
            continue
        # Label rows above the next block row's context are final: no later block can claim them.
        final = rows.bottom if cy1 == end else (cy1 - context) // TIFF_TILE * TIFF_TILE
        if final > band_top:
            yield band_top, band[: final - band_top]
            band, band_top = band[final - band_top :].copy(), final
        log.debug("labelled rows up to %d of %d", cy1, height)
    if cut:
        log.warning("%s: %s reached the edge of the block context; raise the context above the largest nucleus radius", name, counted(cut, "nucleus", "nuclei"))


def label_image(source, engine, tiling=Tiling(), thresholds=Thresholds(), tiles=None, workers=1):
    """Whole label array of a (small enough) image."""
    return np.concatenate([rows for _, rows in label_bands(source, engine, tiling, thresholds, tiles, workers=workers)])
