"""What an image looks like, decided once: its intensity range, whether its background is bright
and its modality, all from one set of statistics, so the normaliser's inversion and the
modality's postprocess thresholds always agree.

Brightfield and histology images show dark nuclei on a bright background; fluorescence shows
bright nuclei on a dark one. A bright background is inverted for the network; among
bright-background images, coloured ones (H&E and other stains) are histology. Dense stained
tissue leaves little bright background, so an image whose darker pixels are coloured counts
as bright too.
"""

from dataclasses import dataclass

import numpy as np

# The intensity range: these percentiles of the pixel sample, jointly over channels.
PERCENTILES = (1.0, 99.8)
# A background is bright when the median pixel lies above this fraction of the range.
BRIGHT_MEDIAN = 0.5
# Mean (max - min) over channels, as a fraction of the range, above which an image is coloured.
COLOUR_SPREAD = 0.02
# ...and above which the darker half of its pixels is stained: absorbing dyes (H&E) colour the
# dark pixels, where a fluorescence image's darker half is its unlit background. Dense H&E
# tissue has a dark median (4 of MoNuSeg's 13 training and 6 of its 14 test images) but a
# darker half at 0.19-0.33 of the range; every DSB2018 fluorescence image is at 0.
STAINED_SPREAD = 0.1
# A stain absorbs part of the light in every channel; emission comes in one or two colours on
# black. The darker half's lowest channel, as a fraction of the range, lies above this in
# MoNuSeg's H&E (0.076 at least) and near 0 in fluorescence, colour composites included.
LIGHT_IN_EVERY_CHANNEL = 0.04


@dataclass(frozen=True)
class Appearance:
    offset: float  # the low percentile
    scale: float  # high - low percentile (at least 1e-6)
    bright_background: bool
    modality: str


def pixel_sample(image):
    """About 512x512 evenly strided pixels of an (H, W, C) array (or lazy array): an image read
    region by region (blocks.py) gets the statistics it would get whole."""
    height, width = image.shape[:2]
    return np.asarray(image[:: max(1, height // 512), :: max(1, width // 512)])


def appearance(sample):
    """The Appearance of an image from its (h, w, C) pixel sample."""
    x = sample.astype(np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    lo, hi = np.percentile(x, PERCENTILES)
    scale = max(float(hi - lo), 1e-6)
    mean = x.mean(axis=-1)
    spread = x.max(axis=-1) - x.min(axis=-1)
    median = np.median(mean)
    darker = mean <= median
    stained = np.mean(spread[darker]) / scale > STAINED_SPREAD and np.mean(x.min(axis=-1)[darker] - lo) / scale > LIGHT_IN_EVERY_CHANNEL
    bright = bool((median - lo) / scale > BRIGHT_MEDIAN or stained)
    if not bright:
        modality = "fluorescence"
    elif np.mean(spread) / scale > COLOUR_SPREAD:
        modality = "histology"
    else:
        modality = "brightfield"
    return Appearance(float(lo), scale, bright, modality)
