"""Instance labels -> per-pixel classes the network learns: background, interior, border."""

import numpy as np
from skimage.segmentation import find_boundaries

BACKGROUND, INTERIOR, BORDER = 0, 1, 2
N_CLASSES = 3


def instance_targets(labels):
    """Each nucleus's own inner boundary is BORDER, so touching nuclei are split by 2 pixels."""
    target = np.zeros(labels.shape, np.uint8)
    target[labels > 0] = INTERIOR
    target[find_boundaries(labels, mode="inner") & (labels > 0)] = BORDER
    return target
