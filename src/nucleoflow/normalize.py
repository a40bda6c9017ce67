"""Network input: any gray/RGB image of any bit depth -> float32 (3, H, W), nuclei bright.

The intensity range comes from a strided sample of pixels, so an image read region by region
(blocks.py) is normalised exactly as it would be whole.
"""

import numpy as np


def pixel_sample(image):
    """About 512x512 evenly strided pixels of an (H, W, C) array (or lazy array)."""
    height, width = image.shape[:2]
    return np.asarray(image[:: max(1, height // 512), :: max(1, width // 512)])


def intensity_range(sample, low=1.0, high=99.8):
    """(offset, scale, invert) from an (h, w, C) pixel sample.

    Brightfield and histology images show dark nuclei on a bright background; inverting
    them lets one network see every modality as bright nuclei on dark.
    """
    x = sample.astype(np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    lo, hi = np.percentile(x, [low, high])
    scale = max(hi - lo, 1e-6)
    return lo, scale, bool(np.median(x.mean(axis=-1) - lo) / scale > 0.5)


def apply_range(image, params):
    """Scale an (H, W, C) image (or a region of it) with intensity_range's output."""
    lo, scale, invert = params
    # In place in float32 (within 1 ulp of float64 arithmetic): regions of huge images are large.
    x = image.astype(np.float32)
    x -= lo
    x /= scale
    if invert:
        np.subtract(1.0, x, out=x)
    np.clip(x, -0.5, 1.5, out=x)
    out = np.empty((3,) + x.shape[:2], np.float32)
    out[:] = np.moveaxis(x, -1, 0)  # broadcasts gray to the 3 channels
    return out


def normalize(image, low=1.0, high=99.8):
    """Percentile-normalise an (H, W, C) image jointly over channels; invert bright backgrounds."""
    return apply_range(image, intensity_range(pixel_sample(image), low, high))
