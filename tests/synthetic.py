"""Small synthetic label images with exact ground truth, for fast unit tests."""

import numpy as np


def discs(shape=(128, 160), centres=((30, 30), (30, 52), (80, 100), (100, 40)), radius=12):
    """Non-overlapping discs; the first two touch (nearest pixels 1 apart)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint32)
    for i, (cy, cx) in enumerate(centres, 1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        labels[disc & (labels == 0)] = i
    return labels


def probabilities_from(labels):
    """The probabilities a perfect network would output for these labels."""
    from nucleoflow.targets import N_CLASSES, instance_targets

    target = instance_targets(labels)
    return np.eye(N_CLASSES, dtype=np.float32)[target].transpose(2, 0, 1)
