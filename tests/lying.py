"""Helpers of the tests of inputs that lie (issue 23): the committed real crops, segmenting a file
through the reader path the workflow uses, and comparing the nuclei of two label images."""

import functools
import io
import zipfile

import numpy as np
import pandas as pd
import tifffile
from conftest import CROPS
from PIL import Image

from nucleoflow.segment import Segmenter, output_stem
from nucleoflow.shipped import model_path

# A DSB2018 H&E crop (41 nuclei in its labels; the shipped model finds 39), two DSB2018
# fluorescence crops whose brightest pixels are far from 255 (141 and 122), so a planted
# saturated colour is new, and the MoNuSeg H&E crops (the shipped model is not fit for them:
# their appearance is compared, not their nuclei).
HE = "65c8527c16a01619"
FLUORESCENCE = "1ee4a111f0e0bb9b"
DENSE_FLUORESCENCE = "29dd28df98ee51b4"
MONUSEG = ("TCGA-21-5784_centre", "TCGA-21-5784_corner", "TCGA-NH-A8F7_centre", "TCGA-NH-A8F7_corner")


@functools.cache
def crops():
    """{stem: (H, W) or (H, W, 3) uint8} of every committed crop (38 DSB2018, 4 MoNuSeg); shared:
    copy before changing one."""
    found = {}
    for archive in ("dsb2018_crops.zip", "monuseg_val_crops.zip"):
        with zipfile.ZipFile(CROPS / archive) as z:
            for name in sorted(z.namelist()):
                if name.startswith("images/"):
                    image = np.asarray(Image.open(io.BytesIO(z.read(name))))
                    found[name[len("images/") : -len(".png")]] = image[..., :3] if image.ndim == 3 else image
    return found


def crop(stem):
    return crops()[stem]


def segmenter():
    return Segmenter(model_path("dsb2018_unet"), tta=False)


def segment(seg, path, out, outputs=("labels", "measurements")):
    """(summary row, labels, measurements table or None) of one image file through
    Segmenter.to_files: the reader, the appearance and the block-wise labelling of `segment`."""
    row = seg.to_files(path, out, list(outputs))
    stem = output_stem(path)
    labels = tifffile.imread(out / f"{stem}.tif")
    table = pd.read_csv(out / f"{stem}.csv") if "measurements" in outputs else None
    return row, labels, table


def matched(a, b, min_iou=0.5):
    """How many nuclei of label image `a` have one in `b` (same shape) overlapping it at IoU >=
    min_iou (at 0.5 and above a match is one to one)."""
    a, b = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    both = (a > 0) & (b > 0)
    if not both.any():
        return 0
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    union = np.bincount(a)[pairs[0]] + np.bincount(b)[pairs[1]] - inter
    return int((inter / union >= min_iou).sum())


def nuclei(labels):
    return len(np.unique(labels)) - 1


def outside(labels, mask):
    """The label image with every nucleus that touches `mask` removed."""
    kept = labels.copy()
    kept[np.isin(labels, np.unique(labels[mask]))] = 0
    return kept


def grown(mask, *label_images):
    """`mask` grown by every nucleus, in any of the label images, that touches it: the region
    where a cut or an edge may change nuclei, whichever file's nuclei reach into it."""
    grown = mask.copy()
    for labels in label_images:
        grown |= np.isin(labels, np.unique(labels[mask])) & (labels > 0)
    return grown


def foreground_iou(a, b, where):
    """IoU of the nuclei's pixels (any label) of two label images within `where`."""
    a, b = (a > 0) & where, (b > 0) & where
    return (a & b).sum() / max((a | b).sum(), 1)
