"""Scale and colour augmentation of normalised training crops, batched on the training device.

Users' images come at other magnifications and stains than the archive's. A network trained
with zoom and aspect jitter sees nuclei of 0.5-2x the archive's sizes; one trained with stain,
hue, saturation, grayscale and inversion jitter stops relying on the archive's few colour
schemes (the DSB2018 winners' colour<->gray and inversion; Tellez et al. 2018's HED jitter).

Crops arrive normalised (normalize.apply_range: nuclei bright, roughly 0..1). Colour images of
bright-field stains were inverted there, so 1 - x is their transmitted light: stain jitter
applies to that, in optical density, and inverts back.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import hed_from_rgb, rgb_from_hed

# Ruifrok & Johnston's stain matrices as skimage's rgb2hed uses them; the conversion itself is
# redone here because skimage works on numpy arrays, not batched device tensors (and clips
# negative stain amounts, which would make the round trip lossy).
HED_FROM_RGB, RGB_FROM_HED = hed_from_rgb.astype(np.float32), rgb_from_hed.astype(np.float32)
# Resolution kept by a low-resolution crop: down to half, as in the robustness benchmark's x0.5.
LOWRES_FACTORS = (0.5, 1.0)
MIN_LIGHT = 1e-3  # optical density of a pixel that lets through no light: finite


@dataclass(frozen=True)
class Augmentation:
    """What train.augment draws from; the defaults are the robustness candidate's."""

    zoom: tuple = (0.5, 2.0)  # range of the scale factor (log-uniform); (1, 1): off
    aspect: float = 0.2  # y/x scale ratio jitter: exp(uniform(-aspect, aspect))
    stain: float = 0.2  # HED amount jitter: each stain scaled by uniform(1 - stain, 1 + stain)
    hue: float = 0.05  # fraction of the colour circle
    saturation: float = 0.3
    grayscale: float = 0.1  # probability
    invert: float = 0.05  # probability: a model that also sees the other polarity
    lowres: float = 0.0  # probability: the crop's detail blurred away (simulate_low_resolution)

    @classmethod
    def from_config(cls, cfg):
        """From train.augment in the config; {} or None keeps only the dihedral and intensity jitter."""
        if not cfg:
            return cls(zoom=(1.0, 1.0), aspect=0.0, stain=0.0, hue=0.0, saturation=0.0, grayscale=0.0, invert=0.0, lowres=0.0)
        return cls(**{**cfg, "zoom": tuple(cfg.get("zoom", cls.zoom))})


def crop_window(size, zoom, aspect, rng):
    """(height, width) of the source window that, resized to size x size, zooms by the drawn factors."""
    scale = np.exp(rng.uniform(*np.log(zoom))) if zoom[0] != zoom[1] else zoom[0]
    ratio = np.exp(rng.uniform(-aspect, aspect)) if aspect else 1.0
    return max(4, round(size / (scale * np.sqrt(ratio)))), max(4, round(size / (scale / np.sqrt(ratio))))


def zoom_to(image, target, size):
    """A (C, h, w) float crop and its (h, w) class map resized to size x size (bilinear; nearest
    for the classes, which must stay classes)."""
    if image.shape[-2:] == (size, size):
        return image, target
    image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=image.shape[-1] > size)[0]
    target = F.interpolate(target[None, None].float(), size=(size, size), mode="nearest")[0, 0].to(target.dtype)
    return image, target


def simulate_low_resolution(images, probability, rng, factors=LOWRES_FACTORS):
    """Shrink some crops of a (B, C, H, W) batch by a drawn factor (anti-aliased) and enlarge them
    back: nuclei keep their size and lose their fine detail, as in an image that Segmenter zooms
    up to the training sizes (scale.rescale_factor) or one taken at a lower resolution (nnU-Net's
    SimulateLowResolutionTransform). Probability 0 draws nothing, so that recipes without it keep
    their random streams."""
    if not probability:
        return images
    picked = np.flatnonzero(rng.random(len(images)) < probability)
    if not picked.size:
        return images
    images = images.clone()
    size = images.shape[-2:]
    for i, factor in zip(picked, rng.uniform(*factors, picked.size)):
        small = [max(4, round(side * factor)) for side in size]
        shrunk = F.interpolate(images[i : i + 1], size=small, mode="bilinear", align_corners=False, antialias=True)
        images[i] = F.interpolate(shrunk, size=size, mode="bilinear", align_corners=False)[0]
    return images


def _per_crop(values, device):
    return torch.as_tensor(np.array(values, np.float32), device=device).view(-1, 1, 1, 1)


def stain_jitter(images, amount, rng):
    """Rescale each crop's haematoxylin, eosin and DAB amounts (bright-field colour crops only)."""
    n = len(images)
    light = (1 - images).clamp(MIN_LIGHT, 1)
    density = -torch.log(light)
    matrix = torch.as_tensor(HED_FROM_RGB, device=images.device)
    hed = torch.einsum("bchw,cd->bdhw", density, matrix)
    hed = hed * _per_crop(rng.uniform(1 - amount, 1 + amount, (n, 3)), images.device).view(n, 3, 1, 1)
    rgb = torch.exp(-torch.einsum("bdhw,dc->bchw", hed, torch.as_tensor(RGB_FROM_HED, device=images.device)))
    return 1 - rgb


def hue_saturation(images, hue, saturation, rng):
    """Rotate hue (about the gray axis, exact for RGB) and scale saturation per crop."""
    n = len(images)
    gray = images.mean(dim=1, keepdim=True)
    chroma = (images - gray) * _per_crop(rng.uniform(1 - saturation, 1 + saturation, n), images.device)
    angles = rng.uniform(-hue, hue, n) * 2 * np.pi
    # Rodrigues rotation about (1, 1, 1)/sqrt(3): the gray axis stays put.
    axis = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotations = np.stack([np.eye(3) + np.sin(a) * cross + (1 - np.cos(a)) * cross @ cross for a in angles]).astype(np.float32)
    chroma = torch.einsum("bij,bjhw->bihw", torch.as_tensor(rotations, device=images.device), chroma)
    return gray + chroma


def colour_jitter(images, colour, aug, rng):
    """Stain, hue/saturation, grayscale and inversion jitter of a (B, 3, H, W) batch; colour: a
    bool per crop (an image whose channels differ: stains only apply to those)."""
    colour = np.asarray(colour, bool)
    if aug.stain and colour.any():
        idx = torch.as_tensor(np.flatnonzero(colour), device=images.device)
        images[idx] = stain_jitter(images[idx], aug.stain, rng)
    if aug.hue or aug.saturation:
        images = hue_saturation(images, aug.hue, aug.saturation, rng)
    n = len(images)
    if aug.grayscale:
        gray = _per_crop(rng.random(n) < aug.grayscale, images.device)
        images = gray * images.mean(dim=1, keepdim=True) + (1 - gray) * images
    if aug.invert:
        flip = _per_crop(rng.random(n) < aug.invert, images.device)
        images = flip * (1 - images) + (1 - flip) * images
    return images
