"""The seeded watershed that turns class probabilities into nuclei, at given thresholds.

Two callers: postprocess.instances (inference, at the model card's tuned thresholds) and
validation.py (training's epoch score, at its own fixed ones). It lives apart from postprocess.py
so that editing how predictions are labelled (folders, workers, blocks, tuning) never retrains,
while an edit of this algorithm does: it scores the epochs a training keeps.
"""

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from .targets import BORDER, INTERIOR


def seeded_watershed(probs, seed_threshold, foreground_threshold, min_seed_area, min_area):
    """Seeds are nucleus interiors (borders excluded), grown over the foreground.

    probs: (n_classes, H, W) softmax output. Seeds: P(interior) above seed_threshold, at least
    min_seed_area pixels; grown over P(interior) + P(border) above foreground_threshold; nuclei
    under min_area pixels dropped. Returns uint32 labels 1..N (0 = background).
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
