"""Nucleus size: what a model was trained on, what an image holds, and the zoom between them.

A U-Net sees nuclei through a fixed receptive field: nuclei much smaller than in training merge,
much larger ones split. As Cellpose does, an image whose nuclei lie outside the range the
model was trained on is rescaled so they match the training median, labelled, and its labels
mapped back to the original pixel grid. The diameter comes from the user (they know their
magnification) or from a first pass at the original scale.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage.segmentation import relabel_sequential
from skimage.transform import rescale, resize

# Per-image median diameters from MARGIN times below the training images' 5th percentile to
# MARGIN times above their 95th count as sizes the model knows; outside them an image is rescaled
# to the training median. Chosen on the validation split with the shipped model: the widest range
# that changes no unchanged image while shrunk ones gain (docs/notebook.md).
KNOWN = ("p5", "p95")
MARGIN = 1.4


def diameters(labels):
    """Equivalent-circle diameter (px) of every nucleus in a label image."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    return np.sqrt(4 * areas[areas > 0] / np.pi)


def median_diameter(labels):
    """Median nucleus diameter (px) of a label image, or None when it holds no nucleus."""
    sizes = diameters(labels)
    return float(np.median(sizes)) if sizes.size else None


def size_distribution(label_images):
    """The training nucleus-size distribution for the model card: percentiles of the per-image
    median diameters (px)."""
    medians = [d for d in (median_diameter(labels) for labels in label_images) if d is not None]
    points = {"p5": 5, "p10": 10, "median": 50, "p90": 90, "p95": 95}
    return {name: round(float(np.percentile(medians, q)), 1) for name, q in points.items()} | {"images": len(medians)}


def training_sizes(data_dir):
    """size_distribution of the training split of a dataset built by the preprocess rule."""
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    rows = manifest[manifest["split"] == "train"]
    return size_distribution(tifffile.imread(Path(data_dir) / path) for path in rows["labels"])


def rescale_factor(diameter, sizes, given=False):
    """Zoom that brings nuclei of `diameter` px to the training median; 1 when the model knows
    that size already (a given diameter is always honoured)."""
    if not diameter or not sizes:
        return 1.0
    low, high = sizes[KNOWN[0]] / MARGIN, sizes[KNOWN[1]] * MARGIN
    if not given and low <= diameter <= high:
        return 1.0
    return sizes["median"] / diameter


def zoom(image, factor):
    """(H, W, C) image scaled by factor (bilinear; anti-aliased when shrinking), same dtype."""
    out = rescale(image.astype(np.float32), factor, order=1, channel_axis=-1, anti_aliasing=factor < 1, preserve_range=True)
    if image.dtype.kind in "ui":
        out = out.round().clip(np.iinfo(image.dtype).min, np.iinfo(image.dtype).max)
    return out.astype(image.dtype)


def labels_to_shape(labels, shape):
    """Labels mapped back to the original grid (nearest neighbour), renumbered 1..N: a nucleus
    smaller than a pixel of the original grid disappears."""
    back = resize(labels, shape, order=0, anti_aliasing=False, preserve_range=True).astype(np.uint32)
    return relabel_sequential(back)[0]
