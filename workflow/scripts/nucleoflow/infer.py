"""Tiled sliding-window inference with Gaussian blending (as MONAI / nnU-Net do)."""

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .device import autocast, pick_device
from .io import load_hwc, staging_dir, to_hwc, write_tiff
from .model import load_model
from .normalize import normalize

log = logging.getLogger(__name__)


def _starts(size, tile, step):
    starts = list(range(0, max(size - tile, 0) + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def gaussian_weight(shape, sigma_scale=0.125):
    """Tile weights peaking at the centre; floored so edge pixels never get zero weight."""
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (sigma_scale * n)) ** 2) for n in shape]
    weight = np.outer(*axes).astype(np.float32)
    return np.maximum(weight / weight.max(), 1e-3)


@torch.no_grad()
def predict_tiled(model, image, tile=256, overlap=0.25, batch_size=4, device=None):
    """Class probabilities (n_classes, H, W) for a normalised (C, H, W) float image."""
    device = device or next(model.parameters()).device
    multiple = model.multiple
    _, height, width = image.shape
    # Small images use one tile rounded up to the network's multiple instead of a full tile.
    tile_h = min(tile, -(-height // multiple) * multiple)
    tile_w = min(tile, -(-width // multiple) * multiple)
    pad_h, pad_w = max(tile_h - height, 0), max(tile_w - width, 0)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "edge"
        image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
    full_h, full_w = image.shape[1:]
    step_h = max(1, int(tile_h * (1 - overlap)))
    step_w = max(1, int(tile_w * (1 - overlap)))
    corners = [(y, x) for y in _starts(full_h, tile_h, step_h) for x in _starts(full_w, tile_w, step_w)]
    weight = gaussian_weight((tile_h, tile_w))
    weight_t = torch.from_numpy(weight).to(device)
    n_classes = model.config["n_classes"]
    total = np.zeros((n_classes, full_h, full_w), np.float32)
    norm = np.zeros((full_h, full_w), np.float32)
    for i in range(0, len(corners), batch_size):
        batch_corners = corners[i : i + batch_size]
        batch = np.stack([image[:, y : y + tile_h, x : x + tile_w] for y, x in batch_corners])
        inputs = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(inputs)
        probs = (torch.softmax(logits.float(), dim=1) * weight_t).cpu().numpy()
        for (y, x), p in zip(batch_corners, probs):
            total[:, y : y + tile_h, x : x + tile_w] += p
            norm[y : y + tile_h, x : x + tile_w] += weight
    return (total / norm)[:, :height, :width]


def probabilities(model, image, tile=256, overlap=0.25, batch_size=4, name="image"):
    """Class probabilities for a raw image array (gray, RGB or RGBA; any bit depth)."""
    return predict_tiled(model, normalize(to_hwc(image, name)), tile, overlap, batch_size)


def predict_manifest(model_path, data_dir, out_dir, splits, tile, overlap, batch_size, threads=1):
    """Probability maps (float16 (n_classes, H, W), compressed) for the images of `splits`."""
    torch.set_num_threads(threads)
    model, _ = load_model(model_path, pick_device())
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    rows = manifest[manifest["split"].isin(splits)]
    started, pixels = time.monotonic(), 0
    with staging_dir(out_dir) as tmp:
        for n, row in enumerate(rows.itertuples(), 1):
            image = load_hwc(Path(data_dir) / row.image)
            probs = probabilities(model, image, tile, overlap, batch_size, row.image)
            write_tiff(tmp / f"{row.id}.tif", probs.astype(np.float16))
            pixels += image.shape[0] * image.shape[1]
            if n % 20 == 0 or n == len(rows):
                rate = pixels / 1e6 / (time.monotonic() - started)
                log.info("predicted %d/%d images (%.2f MP/s)", n, len(rows), rate)
