"""A head's maps -> instance labels, at given thresholds."""

from . import watershed
from .heads import get_head
from .options import Thresholds


def instances(maps, thresholds=Thresholds()):
    """Instance labels (uint32, 0 = background) of a model's activated maps (n_outputs, H, W) at
    `thresholds`, by the seeded watershed of their head (thresholds.head)."""
    return watershed.instances(get_head(thresholds.head), maps, **thresholds.values())
