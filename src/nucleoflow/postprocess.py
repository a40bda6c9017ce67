"""Class probabilities -> instance labels by seeded watershed."""

import logging
from pathlib import Path

import numpy as np
import tifffile

from .atomic import staging_dir, write_tiff
from .errors import InputError
from .options import Thresholds
from .pool import Workers
from .progress import progress
from .watershed import seeded_watershed

log = logging.getLogger(__name__)


def instances(probs, thresholds=Thresholds()):
    """Instance labels (uint32, 0 = background) of (n_classes, H, W) probabilities at `thresholds`."""
    return seeded_watershed(probs, thresholds.seed_threshold, thresholds.foreground_threshold, thresholds.min_seed_area, thresholds.min_area)


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
