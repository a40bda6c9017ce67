"""Class probabilities -> instance labels by seeded watershed."""

import logging
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from .atomic import staging_dir, write_tiff
from .errors import InputError
from .options import Thresholds
from .pool import Workers
from .progress import progress
from .targets import BORDER, INTERIOR

log = logging.getLogger(__name__)


def instances(probs, thresholds=Thresholds()):
    """Seeds are nucleus interiors (borders excluded), grown over the foreground.

    probs: (n_classes, H, W) softmax output. Returns uint32 labels 1..N (0 = background).
    """
    interior = probs[INTERIOR]
    foreground = (interior + probs[BORDER]) > thresholds.foreground_threshold
    seeds, _ = ndi.label(interior > thresholds.seed_threshold)
    seeds = _drop_small(seeds, thresholds.min_seed_area)
    labels = watershed(-interior, markers=seeds, mask=foreground | (seeds > 0))
    return relabel_sequential(_drop_small(labels, thresholds.min_area).astype(np.uint32))[0]


def _drop_small(labels, min_size):
    """Labels with the regions of fewer than min_size pixels set to background."""
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def label_folder(probs_dir, out_dir, thresholds, modalities, workers=1):
    """Every probability TIFF in probs_dir -> a uint32 label TIFF of the same name, all of them or
    none; `workers` processes label images side by side.

    thresholds: an options.ThresholdSet; modalities: {image id: modality}.
    """
    paths = sorted(Path(probs_dir).glob("*.tif"))
    with staging_dir(out_dir) as tmp, Workers(max(1, min(workers, len(paths)))) as pool:  # the workers stop first
        jobs = [(path, tmp / path.name, thresholds.for_modality(modalities.get(path.stem))) for path in paths]
        for _ in progress(pool.map(label_file, jobs), total=len(jobs), desc="postprocess", unit="image", log=log):
            pass  # each image is written by the process that labels it


def label_file(probs_path, out_path, thresholds):
    """One probability TIFF -> a uint32 label TIFF; a file that cannot be read is named."""
    try:
        probs = tifffile.imread(probs_path)
    except Exception as exc:  # tifffile, its codecs and the OS raise many kinds for a damaged file
        raise InputError(probs_path, f"cannot be read as a probability map ({exc})", "Delete it and rerun the predict rule") from exc
    write_tiff(out_path, instances(probs.astype(np.float32), thresholds))
