"""The seeded watershed that turns a head's maps into nuclei: seeds grown over the foreground.

Every head is labelled here (instances): the heads differ only in which of their maps give the
seeds, the foreground and the relief the seeds grow down (Head.watershed_inputs).
"""

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed


def instances(head, maps, seed_threshold, foreground_threshold, min_seed_area, min_area):
    """uint32 instance labels (0 = background) of a head's numpy activated maps (n_outputs, H, W):
    its seeds (at least min_seed_area pixels) grown down its relief over its foreground; nuclei
    under min_area pixels dropped."""
    relief, seeds, foreground = head.watershed_inputs(maps, seed_threshold, foreground_threshold)
    return grow_seeds(relief, seeds, foreground, min_seed_area, min_area)


def grow_seeds(height, seeds, foreground, min_seed_area, min_area):
    """Connected seed regions (4-connected, at least min_seed_area pixels) grown down the map
    `height` over the foreground; nuclei under min_area pixels dropped. Returns uint32 labels
    1..N (0 = background)."""
    seeds, _ = ndi.label(seeds)
    seeds = _drop_small(seeds, min_seed_area)
    labels = watershed(-height, markers=seeds, mask=foreground | (seeds > 0))
    return relabel_sequential(_drop_small(labels, min_area).astype(np.uint32))[0]


def _drop_small(labels, min_size):
    """Labels with the regions of fewer than min_size pixels set to background."""
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)
