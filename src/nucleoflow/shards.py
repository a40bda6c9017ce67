"""One huge image over many jobs: each job labels a part (a band of block rows), the gather joins
the parts into the labels and outputs one job would have written, exactly. The cluster-parts code
is all here: where the parts are cut (split_block_rows, by a cost model of predicting and
labelling), the rows each sees (part_rows), and the join (merge_parts).

Part k of n labels its block rows (part_rows) as one job labelling the whole image does,
on the same tile grid, but does not know the nuclei of the bands above it, which one job pastes
first. One job pastes each nucleus into the pixels still free (blocks._paste_owned), so with R
the pixels that the nuclei of the bands above took, a nucleus of the part is, in one job, its
pixels in the part less R, and one left with no pixel is never numbered. Since R only lies in
the rows where the part overlaps the bands above (their blocks' context), merging the parts in
order, each trimmed by the merged rows above it, its survivors numbered after them in its own
order (one job's raster block order), gives one job's labels; nuclei that lost pixels are
measured (and outlined) again on their own block's region, as one job measured them. This holds
for any context below the block size: R is the merged image itself, whichever parts it came from.
"""

import bisect
import itertools
import json
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from .errors import counted
from .formats import TIFF_TILE
from .infer import tile_grid, uses_tta
from .outputs import area_summary, output_name, write_image_outputs
from .reader import open_image

log = logging.getLogger(__name__)


# Labelling a pixel (watershed, pasting, measuring) costs about an eighth of predicting it once
# (benchmarks/throughput.py; docs/notebook.md).
LABEL_COST = 1 / 8


class PartRows(NamedTuple):
    """The rows of one part of an image (label_bands' part)."""

    blocks: tuple  # its rows of blocks [r0, r1) (split_block_rows)
    first: int  # the first image row its blocks see (with their context)
    top: int  # the first row of its label bands: `first` rounded down to TIFF_TILE
    bottom: int  # the row after the last one its blocks see


def split_block_rows(height, width, engine, tiling, n):
    """Where n parts of an image split its block rows: [0, b1, ..., total], the slowest part as
    fast as it can be. A part predicts every tile row over its blocks and their context, whole
    (those at its borders again, as its neighbours do), and labels its blocks: cut where few
    tile rows straddle, the parts share the tile rows, not merely the block rows. Parts left
    over (more parts than block rows, or than splitting pays for) are empty, at the end."""
    tile_h, tile_w, tops, cols = tile_grid(height, width, engine, tiling)
    tile_row = tile_h * tile_w * len(cols) * (8 if uses_tta(tiling, height, width) else 1)
    block, context, total = tiling.block, tiling.context, -(-height // tiling.block)

    def cost(a, b):  # of the part with block rows [a, b)
        y0, y1 = max(0, a * block - context), min(height, b * block + context)
        tile_rows = bisect.bisect_left(tops, y1) - bisect.bisect_right(tops, y0 - tile_h)
        return tile_rows * tile_row + (min(height, b * block) - a * block) * width * LABEL_COST

    def greedy(limit):  # the fewest parts costing at most `limit` each, as long as each can be
        bounds = [0]
        while bounds[-1] < total:
            a = b = bounds[-1]
            while b < total and cost(a, b + 1) <= limit:
                b += 1
            if b == a:
                return None
            bounds.append(b)
        return bounds

    low, high = 0.0, cost(0, total)  # a part's cost rises with its rows: bisect the slowest's
    for _ in range(60):
        middle = (low + high) / 2
        bounds = greedy(middle)
        low, high = (low, middle) if bounds is not None and len(bounds) <= n + 1 else (middle, high)
    bounds = greedy(high)
    return bounds + [total] * (n + 1 - len(bounds))


def part_rows(height, width, engine, tiling, part=(1, 1)):
    """PartRows of part (k, n) of an image of height x width pixels."""
    (k, n), block = part, tiling.block
    r0, r1 = (0, -(-height // block)) if n == 1 else split_block_rows(height, width, engine, tiling, n)[k - 1 : k + 1]
    first = max(0, r0 * block - tiling.context)
    return PartRows((r0, r1), first, first // TIFF_TILE * TIFF_TILE, min(height, r1 * block + tiling.context))

PARTS = "parts"  # a shard's folder of parts: parts/<stem>/
PART = "part"  # the name of a part's files: part.tif (its label rows), part.json, part.csv, ...
STEP = 4 * TIFF_TILE  # label rows read from a part at a time


def read_parts(part_dirs):
    """The records (part.json, with "dir") of one image's parts, top to bottom, checked to be one
    image's and to cover all its block rows."""
    parts = sorted(({**json.loads((Path(d) / f"{PART}.json").read_text()), "dir": Path(d)} for d in part_dirs), key=lambda p: p["block_rows"])
    first = parts[0]
    for key in ("image", "shape", "outputs"):
        if any(p[key] != first[key] for p in parts):
            raise ValueError(f"parts {[str(p['dir']) for p in parts]} are not of one image: their {key} differ")
    # Each part sizes the image itself (sizing.plan); parts labelled at other zooms have other blocks.
    if any((p.get("zoom", 1.0), p["block"]) != (first.get("zoom", 1.0), first["block"]) for p in parts):
        found = sorted({(p.get("zoom", 1.0), p["block"]) for p in parts})
        raise ValueError(f"parts of {first['image']} were labelled at different zooms or blocks ((zoom, block): {found}): label them again with one setting")
    starts, ends = zip(*(p["block_rows"] for p in parts))
    if list(starts) != [0, *ends[:-1]] or ends[-1] != -(-first["shape"][0] // first["block"]):
        raise ValueError(f"parts of {first['image']} miss block rows: they hold {list(zip(starts, ends))}")
    return parts


def merge_parts(part_dirs, out_dir, stem):
    """Join the parts of one image (Segmenter.to_part's folders, any order) into
    out_dir/<stem>.<outputs>, as Segmenter.to_files writes them for the whole image in one job;
    returns the image's summary row."""
    parts = read_parts(part_dirs)
    first = parts[0]
    shape, pixel_size_um = tuple(first["shape"]), first["pixel_size_um"]
    counts = {"trimmed": 0, "dropped": 0}
    with open_image(first["image"], **first["open"]) as source:
        if (source.height, source.width) != shape:
            raise ValueError(f"{first['image']}: {source.height}x{source.width} px, its parts were labelled at {shape[0]}x{shape[1]}: label them again")

        def bands_for(nuclei):
            return _merged_bands(parts, shape[1], nuclei, counts)

        nuclei = write_image_outputs(source, out_dir, stem, first["outputs"], bands_for, first["channel_names"], pixel_size_um)
    trimmed, dropped = counts["trimmed"], counts["dropped"]
    found = counted(len(nuclei.areas), "nucleus", "nuclei")
    log.info("%s: %d parts joined, %s; where parts overlap %s trimmed, %d dropped", stem, len(parts), found, counted(trimmed, "nucleus", "nuclei"), dropped)
    return {"image": Path(first["image"]).name, **area_summary(nuclei.areas, pixel_size_um), **first["about"]}


def _merged_bands(parts, width, nuclei, counts):
    """Yield (top, rows) of the joined labels, TIFF_TILE-aligned, feeding `nuclei` each part's
    nuclei in order (relabelled, trimmed ones measured again, emptied ones left out) and
    counting the trimmed and dropped ones in `counts`."""
    import zarr

    pending = np.zeros((0, width), np.uint32)  # joined rows from the next part's top down, not yet final
    offset = 0  # nuclei numbered so far
    for i, part in enumerate(parts):
        top, bottom = part["rows"]
        end = parts[i + 1]["rows"][0] if i + 1 < len(parts) else bottom  # rows above it are final after this part
        areas = np.asarray(part["areas"], np.int64)
        with tifffile.TiffFile(part["dir"] / f"{PART}.tif") as tif:
            stored = zarr.open(tif.series[0].aszarr(), mode="r")
            taken = pending != 0  # R: pixels that nuclei of the parts above took
            lost = np.bincount(stored[: len(pending)][taken], minlength=len(areas) + 1)[1:]
            dropped, trimmed = lost == areas, np.nonzero((lost > 0) & (lost < areas))[0] + 1
            lut = np.zeros(len(areas) + 1, np.uint32)
            lut[1:][~dropped] = offset + 1 + np.arange(np.count_nonzero(~dropped), dtype=np.uint32)
            # The first rows read hold the overlap and every trimmed nucleus's block region whole.
            reach = max([len(pending)] + [_region(part, label)[2] - top for label in trimmed])
            reach = min(-(-reach // TIFF_TILE) * TIFF_TILE, bottom - top)
            window = lut[stored[:reach]]
            window[: len(pending)][taken] = pending[taken]
            again = _measured_again(part, trimmed, lut[trimmed], window, top, nuclei)
            for nucleus in nuclei.read({name: part["dir"] / output_name(PART, name) for name in part["outputs"]}, areas):
                label = int(lut[nucleus.label])
                if label:
                    nuclei.add(again.get(label) or nuclei.relabelled(nucleus, label))
            offset += np.count_nonzero(~dropped)
            counts["trimmed"] += len(trimmed)
            counts["dropped"] += np.count_nonzero(dropped)
            chunks = itertools.chain([(top, window)], ((y, lut[stored[y - top : min(y + STEP, bottom) - top]]) for y in range(top + reach, bottom, STEP)))
            later = []
            for y, rows in chunks:
                final = min(max(end - y, 0), len(rows))
                if final:
                    yield y, rows[:final]
                if final < len(rows):
                    later.append(rows[final:])
            pending = np.concatenate(later) if later else np.zeros((0, width), np.uint32)


def _region(part, label):
    """(y0, x0, y1, x1): the region of the block a nucleus of the part came from."""
    index = bisect.bisect_right(part["blocks"], [label, np.inf]) - 1  # blocks: [first label, y0, x0, y1, x1]
    return tuple(part["blocks"][index][1:])


def _measured_again(part, trimmed, labels, window, top, nuclei):
    """{joined label: Nucleus} of the part's `trimmed` nuclei (joined `labels`), measured and
    outlined as one job does: on their block's region (window: joined rows from `top`)."""
    again, blocks = {}, {}
    for label, joined in zip(trimmed, labels):
        blocks.setdefault(_region(part, label), []).append(joined)
    for (y0, x0, y1, x1), joined in blocks.items():
        region = window[y0 - top : y1 - top, x0:x1]
        for nucleus in nuclei.nuclei(np.where(np.isin(region, joined), region, 0), (y0, x0)):
            again[nucleus.label] = nucleus
    return again
