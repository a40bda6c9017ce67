"""Tiled sliding-window inference with Gaussian blending (as MONAI / nnU-Net do)."""

import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .ahead import ahead
from .atomic import staging_dir, write_tiff
from .engine import check_tile, load_engine
from .normalize import normalize
from .options import Tiling
from .prepared import read_prepared
from .progress import progress
from .reader import to_hwc

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


class Host:
    """Tiles cut, weighted and blended in numpy: engines that take and return numpy arrays
    (OpenVINO, ONNX Runtime on the CPU)."""

    def __init__(self, engine):
        self.engine = engine

    def run(self, batch):
        return self.engine(np.ascontiguousarray(batch))

    @staticmethod
    def upload(array):
        return array

    @staticmethod
    def download(array):
        return array

    @staticmethod
    def zeros(shape):
        return np.zeros(shape, np.float32)

    @staticmethod
    def weigh(probs, weight):  # in place: the engine's output is ours, one pass fewer
        return np.multiply(probs, weight, out=probs)

    @staticmethod
    def concat(arrays, axis):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def stack(arrays):
        return np.stack(arrays)

    @staticmethod
    def dihedral(batch, k, flip):
        batch = np.rot90(batch, k, axes=(2, 3))
        return batch[..., ::-1] if flip else batch

    @staticmethod
    def undo_dihedral(batch, k, flip):
        return np.rot90(batch[..., ::-1] if flip else batch, -k, axes=(2, 3))


class Resident:
    """The same steps on torch tensors on the engine's device: on CUDA the image rows go up once,
    tiles are cut, run, weighted and blended there, and only finished bands come back."""

    def __init__(self, engine):
        self.engine, self.device = engine, engine.device

    def run(self, batch):
        return self.engine.forward(batch)

    def upload(self, array):
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @staticmethod
    def download(tensor):
        return tensor.cpu().numpy()

    def zeros(self, shape):
        return torch.zeros(shape, dtype=torch.float32, device=self.device)

    @staticmethod
    def weigh(probs, weight):
        return probs.mul_(weight)

    @staticmethod
    def concat(tensors, axis):
        return torch.cat(tensors, dim=axis)

    @staticmethod
    def stack(tensors):
        return torch.stack(tensors)

    @staticmethod
    def dihedral(batch, k, flip):
        batch = torch.rot90(batch, k, dims=(2, 3))
        return torch.flip(batch, dims=(3,)) if flip else batch

    @staticmethod
    def undo_dihedral(batch, k, flip):
        return torch.rot90(torch.flip(batch, dims=(3,)) if flip else batch, -k, dims=(2, 3))


def backend_for(engine, resident=None):
    """Resident for engines that run torch tensors on their device (the torch engines; on CUDA
    the point of it), Host otherwise; resident=True/False forces one (tests, benchmarks)."""
    if resident is None:
        resident = hasattr(engine, "forward")
    return Resident(engine) if resident else Host(engine)


def _predict_batch(backend, batch, tta):
    """Probabilities for a batch of tiles; with tta, the mean over the 8 rotations/flips."""
    if not tta:
        return backend.run(batch)
    total = 0
    for k in range(4):
        for flip in (False, True):
            total = total + backend.undo_dihedral(backend.run(backend.dihedral(batch, k, flip)), k, flip)
    return total / 8


def tile_side(tiling, engine):
    """The sliding-window side: tiling.tile, or with tile 0 the largest multiple of the network's
    that a batch of tiles fits in tiling.memory_mb (engine.bytes_per_pixel: measured activation
    memory), so that most images are one tile and huge ones few."""
    if tiling.tile:
        return tiling.tile
    pixels = tiling.memory_mb * 2**20 / (engine.bytes_per_pixel * tiling.batch_size)
    return max(engine.multiple, int(math.sqrt(pixels)) // engine.multiple * engine.multiple)


def tile_grid(height, width, engine, tiling):
    """The sliding windows over an image: (tile height, tile width, tops of the tile rows, lefts
    of the tile columns), on the image padded up to one tile where it is smaller."""
    side = tile_side(tiling, engine)
    margin = int(side * tiling.overlap)
    tile_h, tile_w = (fit_tile(size, side, margin, engine.multiple) for size in (height, width))
    rows_y = _starts(max(height, tile_h), tile_h, max(1, tile_h - margin))
    return tile_h, tile_w, rows_y, _starts(max(width, tile_w), tile_w, max(1, tile_w - margin))


def uses_tta(tiling, height, width):
    """Test-time augmentation for this image: tiling.tta, up to tiling.tta_max_mp megapixels
    (0: any size), where it costs 8x the time for about +0.01 DSB."""
    return tiling.tta and (not tiling.tta_max_mp or height * width <= tiling.tta_max_mp * 1e6)


def predict_rows(read, height, width, engine, tiling=Tiling(), tiles=None, resident=None, rows=None):
    """Yield (top row, probabilities (n_classes, h, width)) bands of an image, top to bottom.

    read(y0, y1) returns rows y0..y1 of the normalised (C, H, W) image. Tiles sit on one grid
    over the whole image and are run one tile row at a time, so memory holds a tile row of the
    image, never the whole of it, and the result does not depend on how the caller cuts it up.
    Rows are read one tile row ahead in a background thread. Tiles are blended by
    backend_for(engine, resident): in numpy, or on the engine's device.
    tiles: a tqdm bar (or None), set to the number of tiles and advanced as they are done.
    rows (y0, y1): only the tile rows covering image rows y0..y1 run, and only those rows are
    yielded; every pixel there gets the same tiles added in the same order as in the whole
    image, so the values are the whole image's, bit for bit (one job's band of a huge image).
    """
    y0, y1 = rows or (0, height)
    backend, tta = backend_for(engine, resident), uses_tta(tiling, height, width)
    tile_h, tile_w, rows_y, cols_x = tile_grid(height, width, engine, tiling)
    full_h, full_w = max(height, tile_h), max(width, tile_w)
    pad_h, pad_w = full_h - height, full_w - width
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    run = [i for i, y in enumerate(rows_y) if y < y1 and y + tile_h > y0]

    def strip_at(y):
        strip = read(y, min(y + tile_h, height))
        if pad_h or pad_w:
            strip = np.pad(strip, ((0, 0), (0, tile_h - strip.shape[1]), (0, pad_w)), mode=mode)
        return backend.upload(strip)

    if tiles is not None:
        tiles.total = len(run) * len(cols_x)  # set, not reset(): that would draw a delayed bar now
    if len(rows_y) == len(cols_x) == 1:
        # One tile covers the image (most images at the default tile): no blending passes.
        probs = _predict_batch(backend, strip_at(0)[None], tta)[0][:, y0:y1, :width]
        if tiles is not None:
            tiles.update(1)
        yield y0, backend.download(probs)
        return
    weight = backend.upload(gaussian_weight((tile_h, tile_w)))
    total = backend.zeros((engine.n_classes, 0, full_w))
    norm = backend.zeros((0, full_w))
    tops = [rows_y[i] for i in run]
    top = tops[0]
    for i, y, strip in zip(run, tops, ahead(strip_at, tops, "nucleoflow-read")):
        grow = y + tile_h - top - norm.shape[0]
        total = backend.concat([total, backend.zeros((engine.n_classes, grow, full_w))], axis=1)
        norm = backend.concat([norm, backend.zeros((grow, full_w))], axis=0)
        for j in range(0, len(cols_x), tiling.batch_size):
            xs = cols_x[j : j + tiling.batch_size]
            batch = backend.stack([strip[:, :, x : x + tile_w] for x in xs])
            for x, p in zip(xs, _predict_batch(backend, batch, tta)):
                total[:, y - top : y - top + tile_h, x : x + tile_w] += backend.weigh(p, weight)
                norm[y - top : y - top + tile_h, x : x + tile_w] += weight
            if tiles is not None:
                tiles.update(len(xs))
        # Rows above the next tile row are final; those above y0 lack the tile rows above them.
        done = min(rows_y[i + 1] if i + 1 < len(rows_y) else full_h, y1)
        if done > max(top, y0):
            start = max(top, y0) - top
            yield top + start, backend.download(total[:, start : done - top, :width] / norm[start : done - top, :width])
        if done > top:
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
            image = read_prepared(Path(data_dir) / row.image)  # the network's channels, as training reads them
            probs = predict_tiled(engine, normalize(image), tiling)
            write_tiff(tmp / f"{row.id}.tif", probs.astype(np.float16))
            pixels += image.shape[0] * image.shape[1]
            bar.update(1)
    log.info("predicted %d images (%.2f MP/s)", len(rows), pixels / 1e6 / (time.monotonic() - started))
