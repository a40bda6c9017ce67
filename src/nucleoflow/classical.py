"""Classical baseline to compare the U-Net with: Otsu + distance-transform watershed.

No learning beyond a small grid search of its few parameters on the validation split
(`tune_classical`), so any gap to the U-Net measures what the network adds.
"""

import itertools

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

from .normalize import normalize
from .scores import image_scores

DEFAULT_GRID = {
    "min_distance": [3, 5, 8],
    "smoothing": [0.5, 1.5],
    "threshold_scale": [0.8, 1.0, 1.2],
    "min_area": [10],
}
# Smoothing of the distance map: breaks the ties of its flat ridges so that a convex
# nucleus gives one peak, not a row of peaks that min_distance only partly removes.
DISTANCE_SIGMA = 1.0


def classical_instances(image, min_distance=4, smoothing=1.0, min_area=10, threshold_scale=1.0):
    """Instance labels of a raw (H, W, C) image; uint32 1..N, 0 = background.

    The image goes through the network's normalisation so that every modality shows
    bright nuclei on a dark background and one threshold rule fits all.
    """
    gray = normalize(image).mean(axis=0)
    if smoothing > 0:
        gray = ndi.gaussian_filter(gray, smoothing)
    # Otsu returns the value itself for a flat image, so `>` leaves no foreground there.
    foreground = ndi.binary_fill_holes(gray > threshold_scale * threshold_otsu(gray))
    components, n_components = ndi.label(foreground)
    if n_components == 0:
        return np.zeros(gray.shape, np.uint32)
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(foreground), DISTANCE_SIGMA)
    # Peaks searched per component: every component gets at least one marker, so none is lost.
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(gray.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers=markers, mask=foreground)
    # By pixel count rather than remove_small_objects, which warns on single-object images.
    labels[np.bincount(labels.ravel())[labels] < min_area] = 0
    return relabel_sequential(labels.astype(np.uint32))[0]


def tune_classical(pairs, grid=None):
    """Grid search on (image, true labels) pairs for the best mean DSB score.

    Returns (best parameters, DataFrame of every grid point and its score, best first).
    """
    grid = DEFAULT_GRID if grid is None else grid
    names = list(grid)
    rows = []
    for values in itertools.product(*(grid[name] for name in names)):
        params = dict(zip(names, values))
        scores = [image_scores(true, classical_instances(image, **params))["dsb"] for image, true in pairs]
        rows.append({**params, "dsb": float(np.mean(scores))})
    rows.sort(key=lambda row: -row["dsb"])  # stable: among ties the earlier grid point wins
    # From the dict, not a DataFrame row, which would turn integer parameters into floats.
    best = {name: rows[0][name] for name in names}
    return best, pd.DataFrame(rows)
