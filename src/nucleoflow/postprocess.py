"""Class probabilities -> instance labels by seeded watershed."""

from .options import Thresholds
from .watershed import seeded_watershed


def instances(probs, thresholds=Thresholds()):
    """Instance labels (uint32, 0 = background) of (n_classes, H, W) probabilities at `thresholds`."""
    return seeded_watershed(probs, thresholds.seed_threshold, thresholds.foreground_threshold, thresholds.min_seed_area, thresholds.min_area)
