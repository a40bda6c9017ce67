"""What an image looks like, decided once: its intensity range, whether its background is bright
and its modality, all from one set of statistics, so the normaliser's inversion and the
modality's postprocess thresholds always agree.

Brightfield and histology images show dark nuclei on a bright background; fluorescence shows
bright nuclei on a dark one. A bright background is inverted for the network; among
bright-background images, coloured ones (H&E and other stains) are histology. Dense stained
tissue leaves little bright background, so an image whose darker pixels are coloured counts
as bright too.

The statistics come from the pixels that are sample (sample_mask), not from pixels a writer
put there: where the image is transparent (alpha 0, whatever colour lies under it: often
black), and an area of one exact black or saturated colour set apart from every other pixel
(a padded margin, a blanked slide label, a saturated speck of dust or hot pixels). Black tissue
margins would otherwise make an H&E image look like fluorescence, and a speck at 65535 in 12-bit
data would squash its nuclei into the bottom 1/16 of the range. Such pixels are also read as
background, so the network does not see them either (reader.RegionSource.read: transparent ones
and fills; normalize.apply_range: fills); RegionSource.appearance logs a warning naming a fill.
"""

from dataclasses import dataclass, replace

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

# Pixels that are not sample (sample_mask). A candidate is the exact colour of the sample's
# darkest or brightest pixel when that colour is black (0 in every channel) or saturated (2**k - 1
# in every channel, k = 8, 10, 12, 14 or 16: where a k-bit sensor or writer clips), covering
# between FILL_MIN_SHARE (less cannot move the 1st or 99.8th percentile) and FILL_MAX_SHARE
# (more is the image's own background) of the sample.
FILL_MIN_SHARE = 0.001
FILL_MAX_SHARE = 0.5
# It is set apart when at most FILL_EDGE times its own pixel count of the other pixels lie within
# FILL_GAP of their range from it: an image's own clipped background or saturated nucleus is
# reached through a blurred edge of values next to it, a pasted margin or label, or a speck, has
# a hard edge and nothing between; no DSB2018 or MoNuSeg image has one (docs/notebook.md).
FILL_GAP = 0.1
FILL_EDGE = 0.02
# A colour set apart over at most SPECK_SHARE of the sample is a speck: not sample on either
# side. A larger one is a fill, not sample on the nuclei's side of the other pixels only (black
# under a bright background, saturated under a dark one): on the background's side it is
# background-like anyway, and an image clipped to an exact black background keeps it.
SPECK_SHARE = 0.01
SATURATED_BITS = (8, 10, 12, 14, 16)

# A fluorescence RGB image whose colours light up different structures is a composite of stains
# (DAPI's blue and a cytoplasm or membrane stain): the network sees the three at once and
# outlines what they show together, whole cells (median area 373 px where the nuclei are 74).
# A colour lights up its pixels above its own Otsu threshold; one whose lit pixels are under
# COMPOSITE_SHARE of those of all colours with signal (a 1st-99.8th percentile range of at least
# SIGNAL of the image's) shows a part of what the others do. An image of one colour, gray or
# equal colours (purple: red and blue alike) lights one set of pixels in every colour.
COMPOSITE_SHARE = 0.5
SIGNAL = 0.1


@dataclass(frozen=True)
class Appearance:
    offset: float  # the low percentile
    scale: float  # high - low percentile (1e-6 for a flat image)
    bright_background: bool
    modality: str
    fills: tuple = ()  # exact colours (one value per sample channel) left out as not sample

    @property
    def background(self):
        """The raw value that apply_range maps to 0, the network's background."""
        return self.offset + (self.scale if self.bright_background else 0.0)


def wide(dtype):
    """Whether float32 cannot hold an image's values exactly (float64, 32- and 64-bit integers):
    their statistics and their scaling to the network's range are computed in float64 (in float32,
    values near 1e12 differing by hundreds were all one value, and beyond 3.4e38 infinite: no nuclei)."""
    dtype = np.dtype(dtype)
    return dtype.itemsize > (4 if dtype.kind == "f" else 2)


def pixel_sample(image):
    """About 512x512 evenly strided pixels of an (H, W, C) array (or lazy array): an image read
    region by region (blocks.py) gets the statistics it would get whole."""
    height, width = image.shape[:2]
    return np.asarray(image[:: max(1, height // 512), :: max(1, width // 512)])


def _statistics(x):
    """The Appearance of (N, 3) float pixels."""
    lo, hi = np.percentile(x, PERCENTILES)
    scale = float(hi - lo) if hi > lo else 1e-6  # a range however small (float data in 1e-40s), else flat
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


def _rgb(pixels):
    x = pixels.astype(np.float64 if wide(pixels.dtype) else np.float32)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _extreme(value):
    """Whether one channel value is black or a saturation level (SATURATED_BITS)."""
    return value == 0 or any(value == 2**k - 1 for k in SATURATED_BITS)


def sample_mask(sample, alpha=None):
    """(mask, fills) of an (h, w, C) pixel sample: mask (h, w) is True where a pixel is sample
    (alpha above 0, where an alpha sample is given, and not of a fill colour); fills: the exact
    colours left out (module docstring; constants above), each a tuple of C values."""
    pixels = sample.reshape(-1, sample.shape[-1])
    keep = np.ones(len(pixels), bool) if alpha is None else np.asarray(alpha).reshape(-1) > 0
    level = pixels.astype(np.float64 if wide(pixels.dtype) else np.float32).mean(axis=-1)
    fills = []
    for _ in range(4):  # e.g. a black margin and a saturated label: one colour at a time
        total = int(keep.sum())
        if not total:
            break
        found = None
        for dark in (True, False):
            index = np.flatnonzero(keep)
            first = index[np.argmin(level[index]) if dark else np.argmax(level[index])]
            colour = pixels[first]
            if len(set(colour.tolist())) != 1 or not _extreme(colour.tolist()[0]):
                continue  # not black or white (a pure red, say, is a colour of the image's own)
            same = keep & (pixels == colour).all(axis=-1)
            count = int(same.sum())
            if not FILL_MIN_SHARE <= count / total <= FILL_MAX_SHARE:
                continue
            rest = keep & ~same
            look = _statistics(_rgb(pixels[rest]))
            if look.scale <= 1e-6:
                continue  # the others are one flat colour too (a mask, a synthetic image): nothing to tell apart
            near = np.abs(level[rest] - level[first]) <= FILL_GAP * look.scale
            if near.sum() > FILL_EDGE * count:
                continue
            if count / total > SPECK_SHARE and dark != look.bright_background:
                continue  # a fill on the background's side: background-like, kept
            found = same, tuple(colour.tolist())
            break
        if found is None:
            break
        keep &= ~found[0]
        fills.append(found[1])
    return keep.reshape(sample.shape[:2]), tuple(fills)


def appearance(sample, alpha=None):
    """The Appearance of an image from its (h, w, C) pixel sample (and its alpha's, if it has
    one), from the pixels that are sample (sample_mask); all of them if none is."""
    mask, fills = sample_mask(sample, alpha)
    pixels = sample[mask] if mask.any() else sample.reshape(-1, sample.shape[-1])
    return replace(_statistics(_rgb(pixels)), fills=fills)


def fill_mask(image, look):
    """(H, W) bool: the pixels of an (H, W, C) image or region whose exact colour is one of the
    Appearance's fills (a gray region, read as one channel, matches a gray fill)."""
    mask = np.zeros(image.shape[:2], bool)
    for colour in look.fills:
        if len(colour) != image.shape[-1]:
            if len(set(colour)) != 1:
                continue
            colour = colour[:1]
        mask |= (image == np.asarray(colour)).all(axis=-1)
    return mask


def distinct_colours(sample, look):
    """(c, share) of a fluorescence RGB image's (h, w, 3) pixel sample whose colour c lights up
    only `share` (under COMPOSITE_SHARE) of the pixels that all its colours with signal light up
    (a composite of stains), else None."""
    if look.modality != "fluorescence" or sample.ndim != 3 or sample.shape[-1] != 3:
        return None
    from skimage.filters import threshold_otsu

    pixels = sample.reshape(-1, 3).astype(np.float64)
    lit = {}
    for c in range(3):
        lo, hi = np.percentile(pixels[:, c], PERCENTILES)
        if hi - lo >= SIGNAL * look.scale:
            lit[c] = pixels[:, c] > threshold_otsu(pixels[:, c])
    if len(lit) < 2:
        return None
    union = np.logical_or.reduce(list(lit.values())).sum()
    fewest = min(lit, key=lambda c: lit[c].sum())
    share = float(lit[fewest].sum() / max(union, 1))
    return (fewest, share) if share < COMPOSITE_SHARE else None
