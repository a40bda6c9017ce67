"""Network input: any gray/RGB image of any bit depth -> float32 (3, H, W), nuclei bright."""

import numpy as np


def normalize(image, low=1.0, high=99.8):
    """Percentile-normalise an (H, W, C) image jointly over channels; invert bright backgrounds.

    Brightfield and histology images show dark nuclei on a bright background; inverting
    them lets one network see every modality as bright nuclei on dark.
    """
    x = image.astype(np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    sample = x[:: max(1, x.shape[0] // 512), :: max(1, x.shape[1] // 512)]
    lo, hi = np.percentile(sample, [low, high])
    x = (x - lo) / max(hi - lo, 1e-6)
    if np.median(sample.mean(axis=-1) - lo) / max(hi - lo, 1e-6) > 0.5:
        x = 1.0 - x
    return np.ascontiguousarray(np.clip(x, -0.5, 1.5).transpose(2, 0, 1), dtype=np.float32)
