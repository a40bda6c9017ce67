"""The validation score that picks training's best epoch: the DSB2018 score (scores.py) of the
nuclei a seeded watershed finds in the network's probabilities, at fixed thresholds.

This watershed and its thresholds are training's own, not postprocess.instances and
options.Thresholds, though they began as the same code and values (the postprocess defaults):
the saved model depends on the score that picked its epoch, so the score is part of how a
training run is defined, like its loss and schedule, and must not change when the inference
side does. An edit of postprocess.py (the watershed that labels predictions, at tuned
thresholds) or of options.py reruns postprocess and what follows, never training; an edit here
reruns training, which may then keep another epoch.
"""

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from .scores import image_scores
from .targets import BORDER, INTERIOR

# Seeds: P(interior) above SEED_THRESHOLD, at least MIN_SEED_AREA pixels; grown over
# P(interior) + P(border) above FOREGROUND_THRESHOLD; nuclei under MIN_AREA pixels dropped.
SEED_THRESHOLD = 0.5
FOREGROUND_THRESHOLD = 0.5
MIN_SEED_AREA = 4
MIN_AREA = 10


def instances(probs):
    """Seeds are nucleus interiors (borders excluded), grown over the foreground.

    probs: (n_classes, H, W) softmax output. Returns uint32 labels 1..N (0 = background).
    """
    interior = probs[INTERIOR]
    foreground = (interior + probs[BORDER]) > FOREGROUND_THRESHOLD
    seeds, _ = ndi.label(interior > SEED_THRESHOLD)
    seeds = _drop_small(seeds, MIN_SEED_AREA)
    labels = watershed(-interior, markers=seeds, mask=foreground | (seeds > 0))
    return relabel_sequential(_drop_small(labels, MIN_AREA).astype(np.uint32))[0]


def _drop_small(labels, min_size):
    """Labels with the regions of fewer than min_size pixels set to background."""
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def validation_dsb(labels, probs):
    """The DSB score of one validation crop: its true labels against the nuclei in `probs`."""
    return image_scores(labels, instances(probs))["dsb"]
