"""Instance labels -> per-pixel classes the interior_border head (interior_border.py) learns:
background, interior, border.

Two kinds of targets:
- `inner_boundary`: every nucleus's own inner boundary is BORDER, so touching nuclei are split
  by 2 pixels (the shipped model's targets).
- `touching`: the DSB2018 winners' targets (topcoders): BORDER only where two nuclei come within
  a few pixels of each other, widened with nucleus size; an isolated nucleus is all INTERIOR, so
  the network spends its border class on the pixels that separate neighbours.
"""

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.segmentation import find_boundaries

BACKGROUND, INTERIOR, BORDER = 0, 1, 2
N_CLASSES = 3
KINDS = ("inner_boundary", "touching")


def instance_targets(labels):
    """Each nucleus's own inner boundary is BORDER, so touching nuclei are split by 2 pixels."""
    target = np.zeros(labels.shape, np.uint8)
    target[labels > 0] = INTERIOR
    target[find_boundaries(labels, mode="inner") & (labels > 0)] = BORDER
    return target


def reach(labels):
    """Per-pixel reach (px) of the touching band: 1 px for nuclei under 10 px across, up to 3 px
    for nuclei over 30 px across (the winners widened it 1-3 px by nucleus area)."""
    areas = np.bincount(labels.ravel())
    diameter = np.sqrt(4 * areas / np.pi)
    per_label = np.clip(np.round(diameter / 10), 1, 3).astype(np.uint8)
    per_label[0] = 0
    return per_label[labels]


def near_other_nucleus(labels, radius):
    """Nucleus pixels with a pixel of another nucleus within `radius` (a disk)."""
    footprint = disk(radius)
    highest = ndi.maximum_filter(labels, footprint=footprint)
    # Background becomes the largest id, so the minimum filter sees only nuclei.
    lowest = ndi.minimum_filter(np.where(labels > 0, labels, np.iinfo(labels.dtype).max), footprint=footprint)
    return (labels > 0) & ((highest != labels) | (lowest != labels))


def touching_targets(labels):
    """INTERIOR = nucleus minus the band where it comes within its reach of a neighbour; BORDER = that band."""
    labels = np.asarray(labels, np.uint32)
    target = np.zeros(labels.shape, np.uint8)
    target[labels > 0] = INTERIOR
    widths = reach(labels)
    adjacent = near_other_nucleus(labels, 1)
    for radius in (1, 2, 3):
        band = (near_other_nucleus(labels, radius) if radius > 1 else adjacent) & (widths == radius)
        target[band] = BORDER
    # A nucleus the band swallowed whole would leave no seed: keep its pixels that do not touch
    # another nucleus, or all of them (a 1-2 px sliver), as interior.
    interior_count = np.bincount(labels[target == INTERIOR], minlength=labels.max() + 1)
    lost = (interior_count == 0) & (np.bincount(labels.ravel(), minlength=labels.max() + 1) > 0)
    lost[0] = False
    if lost.any():
        swallowed = lost[labels]
        keep = swallowed & ~adjacent
        kept = np.bincount(labels[keep], minlength=labels.max() + 1) > 0
        target[keep | (swallowed & ~kept[labels])] = INTERIOR
    return _one_seed_each(labels, target)


def _one_seed_each(labels, target):
    """Where the band cuts a nucleus's interior in pieces (a nucleus wedged between others), keep
    its largest piece as INTERIOR and make the rest BORDER: each piece would seed a nucleus."""
    pieces, n = ndi.label(target == INTERIOR)  # 4-connected, as the postprocess's seeds
    if n == 0:
        return target
    first = np.unique(pieces.ravel(), return_index=True)[1][1:]
    owner = labels.ravel()[first]
    size = np.bincount(pieces.ravel())[1:]
    order = np.lexsort((-size, owner))
    largest = np.zeros(n + 1, bool)
    largest[1:][order[np.r_[True, owner[order][1:] != owner[order][:-1]]]] = True
    target[(pieces > 0) & ~largest[pieces]] = BORDER
    return target


def make_targets(labels, kind="inner_boundary"):
    """The targets of one kind (KINDS) for an instance label image."""
    if kind == "touching":
        return touching_targets(labels)
    if kind == "inner_boundary":
        return instance_targets(labels)
    raise ValueError(f"unknown target kind {kind!r}; use one of {', '.join(KINDS)}")
