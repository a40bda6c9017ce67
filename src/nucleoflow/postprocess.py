"""Class probabilities -> instance labels by seeded watershed."""

import logging
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from .io import staging_dir, write_tiff
from .targets import BORDER, INTERIOR

log = logging.getLogger(__name__)


def instances(probs, seed_threshold=0.5, foreground_threshold=0.5, min_seed_area=4, min_area=10):
    """Seeds are nucleus interiors (borders excluded), grown over the foreground.

    probs: (n_classes, H, W) softmax output. Returns uint32 labels 1..N (0 = background).
    """
    interior = probs[INTERIOR]
    foreground = (interior + probs[BORDER]) > foreground_threshold
    seeds, _ = ndi.label(interior > seed_threshold)
    seeds = _drop_small(seeds, min_seed_area)
    labels = watershed(-interior, markers=seeds, mask=foreground | (seeds > 0))
    return relabel_sequential(_drop_small(labels, min_area).astype(np.uint32))[0]


def _drop_small(labels, min_size):
    """Labels with the regions of fewer than min_size pixels set to background."""
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def thresholds_for(tuned, modality):
    """instances() thresholds for an image of `modality` from tune's output: the values tuned on
    that modality's validation images where it had enough of them, else the global ones."""
    own = tuned.get("modality", {}).get(modality, {})
    return {**{k: v for k, v in tuned.items() if k != "modality"}, **own}


def label_folder(probs_dir, out_dir, thresholds, modalities):
    """Every probability TIFF in probs_dir -> a uint32 label TIFF of the same name.

    thresholds: as tune writes them (global values, per-modality ones under "modality");
    modalities: {image id: modality}.
    """
    paths = sorted(Path(probs_dir).glob("*.tif"))
    with staging_dir(out_dir) as tmp:
        for n, path in enumerate(paths, 1):
            labels = instances(tifffile.imread(path).astype(np.float32), **thresholds_for(thresholds, modalities.get(path.stem)))
            write_tiff(tmp / path.name, labels)
            if n % 50 == 0 or n == len(paths):
                log.info("labelled %d/%d images", n, len(paths))
