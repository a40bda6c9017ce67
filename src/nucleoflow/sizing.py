"""How large an image's nuclei are, and the zoom it is labelled at (scale.py: the sizes a model
knows and the zoom to them; zoomed.py: labelling at a zoom, block by block).

The estimate is a first pass at the image's own scale, the whole image up to
ESTIMATE_WHOLE_PIXELS (its labels kept: they are final when no zoom is needed), a larger one's
densest window: the median diameter of the nuclei it finds. The network misses most nuclei
smaller than it was trained on: of nuclei 4-5 px across it finds none, or the few largest, or
clumps of ordinary size (129 of 11,751 found, no zoom), so the median says little or nothing.
Where the image's blobs are smaller than the model knows (dominant_diameter: a model-free
measure), the densest PROBE_SIDE window is also labelled at PROBE_ZOOM, which brings nuclei of
1.8-17 px into the trained sizes; when that finds more nuclei than the image's own scale there,
its nuclei's median (in image pixels) is the estimate.
"""

import dataclasses
import logging
import math

import numpy as np
from scipy import ndimage as ndi

from .blocks import label_bands
from .normalize import apply_range
from .options import RANGES
from .scale import KNOWN, MARGIN, rescale_factor
from .zoomed import label_zoomed_bands

log = logging.getLogger(__name__)

# Images up to this many pixels (a 4096 px square: 64 MB of labels) get their first pass whole;
# larger ones on their densest ESTIMATE_SIDE square.
ESTIMATE_WHOLE_PIXELS = 4096 * 4096
ESTIMATE_SIDE = 2048
# The probe: the densest PROBE_SIDE square at PROBE_ZOOM (a 1024 px square to predict), run where
# the dominant blob diameter is under SMALL_BLOBS times the smallest size the model knows: above it
# on every committed DSB2018 crop, below it on most of them shrunk 4x (docs/notebook.md).
PROBE_SIDE = 256
PROBE_ZOOM = 4.0
SMALL_BLOBS = 1.5
# Scales of the Laplacian of Gaussian: blobs of 2 to 36 px across (diameter 2 * sqrt(2) * sigma).
SIGMAS = 0.7 * 1.25 ** np.arange(14)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How an image is labelled: at `factor` zoom (1: its own scale), its nuclei `diameter` px
    across (given, estimated, or None: unknown), `note` a caution about their size for the
    summary; held: the first pass's labels when they are final (Held), else None."""

    factor: float = 1.0
    diameter: float | None = None
    how: str = "none"  # where the diameter comes from: given, estimated, probe or none
    note: str = ""
    held: object = dataclasses.field(default=None, compare=False, repr=False)

    def about(self):
        """The summary row's fields on size."""
        return {"diameter_px": None if self.diameter is None else round(self.diameter, 1), "diameter_source": self.how, "zoom": self.factor}


class Held:
    """A whole image's labels from the first pass, with each block's nuclei as on_block got them."""

    def __init__(self):
        self.bands, self.blocks = [], []

    def replay(self, on_block=None):
        """Yield label_bands' bands again, handing each block's nuclei to on_block first."""
        for labels, origin in self.blocks if on_block is not None else ():
            on_block(labels, origin)
        yield from self.bands


class Window:
    """A region of a source (reader.RegionSource) read as an image of its own, normalised as the
    whole image is (its Appearance)."""

    def __init__(self, source, y0, x0, height, width):
        self.source, self.y0, self.x0, self.height, self.width = source, y0, x0, height, width
        self.name, self.appearance = source.name, source.appearance

    def read(self, y0, y1, x0, x1):
        return self.source.read(self.y0 + y0, self.y0 + y1, self.x0 + x0, self.x0 + x1)


def densest_window(source, side):
    """A Window of side x side pixels (the whole image where smaller) with the most nucleus signal:
    the highest mean network input over the strided pixels its Appearance came from."""
    height, width = min(side, source.height), min(side, source.width)
    if (height, width) == (source.height, source.width):
        return Window(source, 0, 0, height, width)
    signal = apply_range(source.sample, source.appearance).mean(axis=0)
    sy, sx = (max(1, round(n / s)) for n, s in zip((source.height, source.width), signal.shape))
    wy, wx = min(max(1, height // sy), signal.shape[0]), min(max(1, width // sx), signal.shape[1])
    total = np.pad(signal.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    boxes = total[wy:, wx:] - total[:-wy, wx:] - total[wy:, :-wx] + total[:-wy, :-wx]
    iy, ix = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
    return Window(source, min(int(iy) * sy, source.height - height), min(int(ix) * sx, source.width - width), height, width)


def dominant_diameter(image):
    """The diameter (px) of the blobs that dominate a 2D image: the scale of the Laplacian of
    Gaussian, scale-normalised, with the most energy (a disk of diameter d peaks near sigma d/2.8);
    None for a flat image."""
    energy = [np.mean((s * s * ndi.gaussian_laplace(image, s)) ** 2) for s in SIGMAS]
    return float(2 * math.sqrt(2) * SIGMAS[int(np.argmax(energy))]) if max(energy) > 0 else None


def _areas(labels):
    counts = np.bincount(labels.ravel())[1:]
    return counts[counts > 0]


def _median_diameter(areas):
    areas = np.concatenate(areas) if areas else np.zeros(0)
    return float(np.median(np.sqrt(4 * areas / np.pi))) if areas.size else None


def _first_pass(source, engine, tiling, thresholds, tiles, workers, hold):
    """(Held or None, the areas of the nuclei found) of the first pass at the image's own scale."""
    areas, held = [], Held() if hold and source.height * source.width <= ESTIMATE_WHOLE_PIXELS else None

    def on_block(labels, origin):
        areas.append(_areas(labels))
        if held is not None:
            held.blocks.append((labels, origin))

    if source.height * source.width <= ESTIMATE_WHOLE_PIXELS:
        bands = label_bands(source, engine, tiling, thresholds, tiles, on_block, workers)
    else:  # its labels are not the image's: no test-time augmentation
        window = densest_window(source, ESTIMATE_SIDE)
        bands = label_bands(window, engine, dataclasses.replace(tiling, tta=False), thresholds, None, on_block, workers)
    for band in bands:
        if held is not None:
            held.bands.append(band)
    return held, areas


def _probe(window, engine, tiling, thresholds, workers):
    """The median diameter (image px) of the nuclei a Window shows at PROBE_ZOOM, where that finds
    more of them than its own scale; else None."""
    tiling = dataclasses.replace(tiling, tta=False)
    found = {1.0: [], PROBE_ZOOM: []}

    def areas_of(zoom):
        return lambda labels, origin: found[zoom].append(_areas(labels))

    passes = (
        label_bands(window, engine, tiling, thresholds, None, areas_of(1.0), workers),
        label_zoomed_bands(window, PROBE_ZOOM, engine, tiling, thresholds, None, areas_of(PROBE_ZOOM), workers),
    )
    for bands in passes:
        for _ in bands:
            pass
    at_scale, zoomed = (sum(len(a) for a in found[zoom]) for zoom in (1.0, PROBE_ZOOM))
    where = f"{window.height}x{window.width} px at ({window.y0}, {window.x0})"
    log.debug("%s: %s: %d nuclei at its own scale, %d at %gx", window.name, where, at_scale, zoomed, PROBE_ZOOM)
    return _median_diameter(found[PROBE_ZOOM]) if zoomed > at_scale else None


def plan(source, engine, tiling, thresholds, sizes, diameter=0, tiles=None, workers=1, hold=True):
    """The Plan of an image (reader.RegionSource): the zoom its nuclei need to match the training
    sizes (`sizes`: the model card's nucleus_diameter_px, or None), from the given `diameter`,
    else from an estimate (module docstring). hold: keep the first pass's labels when final."""
    if diameter and not sizes:
        note = f"the model's card records no training nucleus sizes to zoom to: labelled at its own scale (diameter {diameter:g} px given)"
        log.warning("%s: %s", source.name, note)
        return Plan(1.0, diameter, "given", note)
    if diameter:
        return _zoom_plan(source.name, diameter, sizes, "given")
    if not sizes:
        return Plan()
    held, areas = _first_pass(source, engine, tiling, thresholds, tiles, workers, hold)
    estimate, how = _median_diameter(areas), "estimated"
    window = densest_window(source, PROBE_SIDE)
    blobs = dominant_diameter(apply_range(window.read(0, window.height, 0, window.width), source.appearance).mean(axis=0))
    if blobs is not None and blobs < SMALL_BLOBS * sizes[KNOWN[0]] / MARGIN:
        probed = _probe(window, engine, tiling, thresholds, workers)
        if probed is not None:
            estimate, how = probed, "probe"
    if estimate is None:
        return Plan(held=held)
    sized = _zoom_plan(source.name, estimate, sizes, how)
    return dataclasses.replace(sized, held=held) if sized.factor == 1.0 else sized


def _zoom_plan(name, diameter, sizes, how):
    """The Plan for nuclei `diameter` px across: zoomed to the training median where they lie
    outside the known sizes (a given diameter always), within the zooms that options.RANGES'
    diameters allow, with a caution where that falls short."""
    factor = rescale_factor(diameter, sizes, given=how == "given")
    if factor == 1.0:
        return Plan(1.0, diameter, how)
    low, high = RANGES["diameter"].low, RANGES["diameter"].high
    reach = min(max(diameter, low), high)
    factor = round(sizes["median"] / reach, 3)  # rounded: every part of a huge image takes the same
    if factor == 1.0:
        return Plan(1.0, diameter, how)
    note = ""
    if reach != diameter:
        note = (
            f"nuclei about {diameter:.1f} px across, far outside the {sizes[KNOWN[0]]:g}-{sizes[KNOWN[1]]:g} px the model was trained on "
            f"and beyond the {low:g}-{high:g} px it zooms from: labelled at {factor:g}x zoom, as if {reach:g} px; expect nuclei missed, merged or split"
        )
        log.warning("%s: %s", name, note)
    why = "given" if how == "given" else f"{how}, outside the sizes the model was trained on"
    log.info("%s: nuclei %.1f px across (%s); labelled at %.2fx zoom", name, diameter, why, factor)
    return Plan(factor, diameter, how, note)
