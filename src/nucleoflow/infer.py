"""Tiled sliding-window inference with Gaussian blending (as MONAI / nnU-Net do)."""

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .engine import check_tile, load_engine
from .io import load_hwc, staging_dir, to_hwc, write_tiff
from .normalize import normalize
from .options import Tiling
from .progress import progress

log = logging.getLogger(__name__)


def _starts(size, tile, step):
    starts = list(range(0, max(size - tile, 0) + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def fit_tile(size, tile, margin, multiple):
    """The tile side for one image axis: the smallest multiple of `multiple` that covers `size`
    with as few tiles, overlapping by `margin`, as tiles of side `tile` need. A 2048 px image
    then takes 3 tiles of 736 px, not 3 of 1024 (2.25x the pixels in 2D); small images take one
    tile rounded up to the network's multiple."""
    if size <= tile:
        return -(-size // multiple) * multiple
    n = len(_starts(size, tile, max(1, tile - margin)))
    return min(tile, -(-(size + (n - 1) * margin) // (n * multiple)) * multiple)


def gaussian_weight(shape, sigma_scale=0.125):
    """Tile weights peaking at the centre; floored so edge pixels never get zero weight."""
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (sigma_scale * n)) ** 2) for n in shape]
    weight = np.outer(*axes).astype(np.float32)
    return np.maximum(weight / weight.max(), 1e-3)


def _dihedral(batch, k, flip):
    batch = np.rot90(batch, k, axes=(2, 3))
    return batch[..., ::-1] if flip else batch


def _undo_dihedral(batch, k, flip):
    return np.rot90(batch[..., ::-1] if flip else batch, -k, axes=(2, 3))


def _predict_batch(engine, batch, tta):
    """Probabilities for a batch of tiles; with tta, the mean over the 8 rotations/flips."""
    if not tta:
        return engine(batch)
    total = 0
    for k in range(4):
        for flip in (False, True):
            total = total + _undo_dihedral(engine(np.ascontiguousarray(_dihedral(batch, k, flip))), k, flip)
    return total / 8


def predict_rows(read, height, width, engine, tiling=Tiling(), tiles=None):
    """Yield (top row, probabilities (n_classes, h, width)) bands of an image, top to bottom.

    read(y0, y1) returns rows y0..y1 of the normalised (C, H, W) image. Tiles sit on one grid
    over the whole image and are run one tile row at a time, so memory holds a tile row of the
    image, never the whole of it, and the result does not depend on how the caller cuts it up.
    tiles: a tqdm bar (or None), set to the number of tiles and advanced as they are done.
    """
    margin = int(tiling.tile * tiling.overlap)
    tile_h, tile_w = (fit_tile(size, tiling.tile, margin, engine.multiple) for size in (height, width))
    full_h, full_w = max(height, tile_h), max(width, tile_w)
    pad_h, pad_w = full_h - height, full_w - width
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    rows_y = _starts(full_h, tile_h, max(1, tile_h - margin))
    cols_x = _starts(full_w, tile_w, max(1, tile_w - margin))

    def strip_at(y):
        strip = read(y, min(y + tile_h, height))
        if pad_h or pad_w:
            strip = np.pad(strip, ((0, 0), (0, tile_h - strip.shape[1]), (0, pad_w)), mode=mode)
        return strip

    if tiles is not None:
        tiles.total = len(rows_y) * len(cols_x)  # set, not reset(): that would draw a delayed bar now
    if len(rows_y) == len(cols_x) == 1:
        # One tile covers the image (every DSB2018 image at the default tile): no blending passes.
        probs = _predict_batch(engine, strip_at(0)[None], tiling.tta)[0][:, :height, :width]
        if tiles is not None:
            tiles.update(1)
        yield 0, probs
        return
    weight = gaussian_weight((tile_h, tile_w))
    total = np.zeros((engine.n_classes, 0, full_w), np.float32)
    norm = np.zeros((0, full_w), np.float32)
    top = 0
    for i, y in enumerate(rows_y):
        strip = strip_at(y)
        grow = y + tile_h - top - norm.shape[0]
        total = np.concatenate([total, np.zeros((engine.n_classes, grow, full_w), np.float32)], axis=1)
        norm = np.concatenate([norm, np.zeros((grow, full_w), np.float32)])
        for j in range(0, len(cols_x), tiling.batch_size):
            xs = cols_x[j : j + tiling.batch_size]
            batch = np.stack([strip[:, :, x : x + tile_w] for x in xs])
            for x, p in zip(xs, _predict_batch(engine, batch, tiling.tta)):
                total[:, y - top : y - top + tile_h, x : x + tile_w] += p * weight
                norm[y - top : y - top + tile_h, x : x + tile_w] += weight
            if tiles is not None:
                tiles.update(len(xs))
        # Rows above the next tile row are final.
        done = min(rows_y[i + 1] if i + 1 < len(rows_y) else full_h, height)
        if done > top:
            yield top, total[:, : done - top, :width] / norm[: done - top, :width]
            total, norm, top = total[:, done - top :], norm[done - top :], done


def predict_tiled(engine, image, tiling=Tiling()):
    """Class probabilities (n_classes, H, W) for a normalised (C, H, W) float image."""
    _, height, width = image.shape
    bands = predict_rows(lambda y0, y1: image[:, y0:y1], height, width, engine, tiling)
    return np.concatenate([probs for _, probs in bands], axis=1)


def probabilities(engine, image, tiling=Tiling(), name="image"):
    """Class probabilities for a raw image array (gray, RGB or RGBA; any bit depth)."""
    return predict_tiled(engine, normalize(to_hwc(image, name)), tiling)


def predict_manifest(model_path, data_dir, out_dir, splits, tiling=Tiling(), threads=1):
    """Probability maps (float16 (n_classes, H, W), compressed) for the images of `splits`."""
    engine = load_engine(model_path, tiling.engine, threads)
    check_tile(tiling.tile, engine, model_path)
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    rows = manifest[manifest["split"].isin(splits)]
    started, pixels = time.monotonic(), 0
    with staging_dir(out_dir) as tmp, progress(total=len(rows), desc="predict", unit="image", log=log) as bar:
        for row in rows.itertuples():
            image = load_hwc(Path(data_dir) / row.image)
            probs = probabilities(engine, image, tiling, row.image)
            write_tiff(tmp / f"{row.id}.tif", probs.astype(np.float16))
            pixels += image.shape[0] * image.shape[1]
            bar.update(1)
    log.info("predicted %d images (%.2f MP/s)", len(rows), pixels / 1e6 / (time.monotonic() - started))
