"""Network input: any gray/RGB image of any bit depth -> float32 (3, H, W), nuclei bright."""

import numpy as np

from .appearance import appearance, fill_mask, pixel_sample, wide


def apply_range(image, look):
    """Scale an (H, W, C) image (or a region of it) to its Appearance's range, inverting a bright
    background; pixels of its fills (not sample: appearance.sample_mask) become background, 0."""
    hidden = fill_mask(image, look) if look.fills else None
    if wide(image.dtype):  # in float64, then float32: float32 cannot hold these values (appearance.wide)
        x = ((image - look.offset) / look.scale).astype(np.float32)
    else:  # in place in float32 (within 1 ulp of float64 arithmetic): regions of huge images are large
        x = image.astype(np.float32)
        x -= look.offset
        x /= look.scale
    if look.bright_background:
        np.subtract(1.0, x, out=x)
    np.clip(x, -0.5, 1.5, out=x)
    if hidden is not None:
        x[hidden] = 0.0
    out = np.empty((3,) + x.shape[:2], np.float32)
    out[:] = np.moveaxis(x, -1, 0)  # broadcasts gray to the 3 channels
    return out


def normalize(image):
    """Percentile-normalise an (H, W, C) image jointly over channels; invert bright backgrounds."""
    return apply_range(image, appearance(pixel_sample(image)))
