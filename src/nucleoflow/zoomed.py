"""Images labelled at another zoom, block by block (sizing.py chooses the zoom).

Each block of the image, with its context, is read at the image's own scale, zoomed, normalised,
predicted and labelled alone, and its labels are mapped back to the image's pixels before it
keeps the nuclei it owns and pastes them as blocks.py does. From the zoom on, everything runs on
the image's own pixel grid (bands, measurements, the parts of a huge image: shards.py), and
memory is bounded by one block, never by the zoomed image: a 4096 px image zoomed 4x is 16384 px
a side, and held whole it took over 6 GB. A block is predicted on windows of its own, not on one
grid over the whole zoomed image, so its probabilities near its edge are not the whole image's;
its context absorbs that. The context and the block are counted in zoomed pixels, where the
network sees the nuclei (blocks of at least options.RANGES' 64 image pixels).

One geometry for every block, so blocks agree where they overlap: zoomed pixel i samples the
image at (i + 0.5) / factor - 0.5 (bilinear; anti-aliased by a Gaussian of sigma
(1 / factor - 1) / 2 when shrinking, as skimage's rescale), and image pixel y takes the label of
zoomed pixel floor((y + 0.5) * factor), the one whose area holds its centre.
"""

import contextlib
import dataclasses
import functools
import math

import numpy as np
from scipy import ndimage as ndi

from .blocks import _block_grid, _paste_blocks, owned
from .infer import predict_tiled, uses_tta
from .normalize import apply_range
from .options import RANGES, Thresholds, Tiling
from .pool import label_here, workers_for
from .postprocess import instances
from .shards import part_rows

# A shrunk image's blocks are at most this many times the block size a side (in image pixels):
# its band of label rows, and the region a block reads, stay bounded however strong the shrink.
MAX_BLOCK_SCALE = 4


def zoomed_shape(shape, factor):
    """(height, width) of an image of `shape` at `factor`: what test-time augmentation is decided on."""
    return tuple(max(1, round(n * factor)) for n in shape)


def grid_tiling(tiling, factor):
    """The Tiling of the image's own pixel grid at a zoom: `tiling`'s block and context (zoomed
    pixels) in image pixels, and windows the size of a block with its context, the work each
    block does (shards.split_block_rows balances parts by it)."""
    block = int(min(max(round(tiling.block / factor), RANGES["block"].low), MAX_BLOCK_SCALE * tiling.block))
    context = int(min(math.ceil(tiling.context / factor), block - 1, RANGES["context"].high))
    side = block + 2 * context
    return dataclasses.replace(tiling, block=block, context=context, tile=side, overlap=min(2 * context / side, RANGES["overlap"].high))


def _index(pixels, factor):
    """The zoomed pixel whose area holds each image pixel's centre."""
    return np.floor((np.asarray(pixels) + 0.5) * factor).astype(np.intp)


def zoomed_span(start, stop, factor):
    """The zoomed pixels [start, stop) that image pixels [start, stop) take their labels from."""
    return int(_index(start, factor)), int(_index(stop - 1, factor)) + 1


def _axis(span, factor, size, margin):
    """Along one axis, for the zoomed pixels of `span`: the image pixels [first, last) to read and,
    from first, each zoomed pixel's two neighbours and the weight of the second."""
    at = np.clip((np.arange(*span) + 0.5) / factor - 0.5, 0, size - 1)
    below = np.floor(at).astype(np.intp)
    first, last = max(0, int(below[0]) - margin), min(size, int(below[-1]) + 2 + margin)
    return first, last, below - first, np.minimum(below + 1, size - 1) - first, at - below


def read_zoomed(source, factor, rows, cols):
    """Network input (3, h, w) of the zoomed pixels rows x cols ((start, stop) each) of a source
    (reader.RegionSource) at `factor`, normalised by the source's Appearance, as label_bands
    normalises its rows. Values wider than float32 holds exactly are zoomed in float64."""
    sigma = max(0.0, (1 / factor - 1) / 2)
    margin = int(4 * sigma + 0.5) + 1 if sigma else 0  # the Gaussian's reach (scipy truncates at 4 sigma)
    y0, y1, y_low, y_high, wy = _axis(rows, factor, source.height, margin)
    x0, x1, x_low, x_high, wx = _axis(cols, factor, source.width, margin)
    region = source.read(y0, y1, x0, x1)
    wide = region.dtype.itemsize > (4 if region.dtype.kind == "f" else 2)
    x = region.astype(np.float64 if wide else np.float32)
    if sigma:
        x = ndi.gaussian_filter(x, (sigma, sigma, 0), mode="nearest")
    wy, wx = wy.astype(x.dtype)[:, None, None], wx.astype(x.dtype)[None, :, None]
    x = x[y_low] * (1 - wy) + x[y_high] * wy
    x = x[:, x_low] * (1 - wx) + x[:, x_high] * wx
    return apply_range(x, source.appearance)


def _label_zoomed(probs, block, thresholds, shape, factor):
    """blocks._label_block for a zoomed block: its labels mapped back to the image's pixels of its
    extent (a nucleus no image pixel centre falls in is lost) before it keeps its own."""
    _, (ey0, ey1, ex0, ex1) = block
    labels = instances(probs, thresholds)
    rows = _index(np.arange(ey0, ey1), factor) - _index(ey0, factor)
    cols = _index(np.arange(ex0, ex1), factor) - _index(ex0, factor)
    return owned(labels[np.ix_(rows, cols)], block, shape)


def _zoomed_probabilities(source, factor, grid, engine, tiling, tiles):
    """((core, extent), [probabilities of the zoomed extent]) of each block of `grid`."""
    for core, (ey0, ey1, ex0, ex1) in grid:
        image = read_zoomed(source, factor, zoomed_span(ey0, ey1, factor), zoomed_span(ex0, ex1, factor))
        probs = predict_tiled(engine, image, tiling)
        if tiles is not None:
            tiles.update(1)
        yield (core, (ey0, ey1, ex0, ex1)), [probs]


def label_zoomed_bands(source, factor, engine, tiling=Tiling(), thresholds=Thresholds(), tiles=None, on_block=None, workers=1, part=(1, 1)):
    """blocks.label_bands of the image labelled at `factor` (!= 1): (top, uint32 label rows) on
    the image's own pixel grid, each block's nuclei handed to on_block, part (k, n) the k-th band
    of block rows of grid_tiling(tiling, factor). tiles: a tqdm bar counting blocks."""
    shape = (source.height, source.width)
    grid = grid_tiling(tiling, factor)
    rows = part_rows(*shape, engine, grid, part)
    blocks = list(_block_grid(shape, grid.block, grid.context, rows.blocks))
    if tiles is not None:
        tiles.total = getattr(tiles, "n", 0) + len(blocks)  # after a first pass's tiles
    # The zoomed image's size decides test-time augmentation, not each block's.
    windows = dataclasses.replace(tiling, tta=uses_tta(tiling, *zoomed_shape(shape, factor)), tta_max_mp=0)
    label = functools.partial(_label_zoomed, thresholds=thresholds, shape=shape, factor=factor)
    probabilities = _zoomed_probabilities(source, factor, blocks, engine, windows, tiles)
    side = grid.block + 2 * grid.context
    max_pixels = max(min(side, shape[0]) * min(side, shape[1]), math.ceil(side * factor + 1) ** 2)  # labels, probabilities
    with workers_for(workers) as pool:
        # Blocks are predicted one by one, not in rows: two per worker in flight keep them busy.
        labelled = pool.label_blocks(label, probabilities, 2 * pool.count + 1, max_pixels) if len(blocks) > 1 else label_here(label, probabilities)
        with contextlib.closing(labelled):
            yield from _paste_blocks(labelled, shape, grid.context, on_block, source.name, rows, min(rows.blocks[1] * grid.block, shape[0]))
