import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import hed2rgb, rgb2hed

from nucleoflow.augment import Augmentation, colour_jitter, crop_window, hue_saturation, simulate_low_resolution, stain_jitter, zoom_to
from nucleoflow.scale import zoom


def histology_crop(crops_zip):
    """A real H&E crop of the committed set, as normalise leaves it: inverted, 0..1."""
    with zipfile.ZipFile(crops_zip) as archive:
        name = next(n for n in sorted(archive.namelist()) if n.startswith("images/") and np.asarray(Image.open(io.BytesIO(archive.read(n)))).ndim == 3)
        rgb = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")).astype(np.float32) / 255
    return rgb


class Fixed:
    """An rng whose uniform() returns given values (the jitter drawn), to compare with skimage."""

    def __init__(self, values):
        self.values = values

    def uniform(self, low, high, size):
        return np.broadcast_to(self.values, size)


def test_stain_jitter_is_skimages_hed_jitter(crops_zip):
    rgb = histology_crop(crops_zip)
    alpha = np.array([1.2, 0.8, 1.0], np.float32)
    hed = rgb2hed(rgb)
    expected = hed2rgb(hed * alpha)
    batch = torch.from_numpy(1 - rgb).permute(2, 0, 1)[None].contiguous()
    out = 1 - stain_jitter(batch, 0.2, Fixed(alpha))[0].permute(1, 2, 0).numpy()
    # Where skimage clips nothing (every stain amount positive, light above this code's floor).
    exact = (hed > 0).all(axis=-1) & (rgb.min(axis=-1) > 0.01) & (expected.max(axis=-1) < 1)
    assert exact.mean() > 0.2
    assert np.abs(out - expected)[exact].max() < 2e-3
    assert np.abs(out - rgb).max() > 0.05  # and it changed the stain


def test_hue_rotation_keeps_gray_and_brightness(crops_zip):
    rgb = torch.from_numpy(histology_crop(crops_zip)).permute(2, 0, 1)[None]
    rng = np.random.default_rng(0)
    out = hue_saturation(rgb, 0.2, 0.0, rng)
    torch.testing.assert_close(out.mean(dim=1), rgb.mean(dim=1), atol=1e-5, rtol=0)
    assert (out - rgb).abs().max() > 0.02
    gray = rgb.mean(dim=1, keepdim=True).repeat(1, 3, 1, 1)
    torch.testing.assert_close(hue_saturation(gray, 0.2, 0.3, rng), gray, atol=1e-5, rtol=0)


def test_zoom_keeps_classes_and_draws_both_ways():
    rng = np.random.default_rng(1)
    windows = [crop_window(128, (0.5, 2.0), 0.2, rng) for _ in range(200)]
    sides = np.array(windows)
    assert sides.min() < 80 and sides.max() > 200  # shrinks and enlarges nuclei
    target = torch.zeros(100, 60, dtype=torch.int64)
    target[20:40, 10:30], target[21:39, 11:29] = 2, 1
    image, out = zoom_to(torch.rand(3, 100, 60), target, 128)
    assert image.shape == (3, 128, 128) and out.shape == (128, 128)
    assert set(out.unique().tolist()) == {0, 1, 2}


@pytest.mark.parametrize("cfg", [None, {}])
def test_no_augment_config_changes_nothing(cfg):
    aug = Augmentation.from_config(cfg)
    images = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(colour_jitter(images.clone(), [True, False, True, False], aug, np.random.default_rng(0)), images)
    assert crop_window(64, aug.zoom, aug.aspect, np.random.default_rng(0)) == (64, 64)


def test_inversion_and_grayscale_are_drawn_per_crop():
    aug = Augmentation(zoom=(1, 1), aspect=0, stain=0, hue=0, saturation=0, grayscale=0.5, invert=0.5)
    images = torch.rand(64, 3, 8, 8)
    out = colour_jitter(images.clone(), [False] * 64, aug, np.random.default_rng(0))
    inverted = torch.isclose(out.mean(dim=(1, 2, 3)), 1 - images.mean(dim=(1, 2, 3)), atol=1e-5)
    gray = (out.std(dim=1) < 1e-6).all(dim=(1, 2))
    assert 10 < inverted.sum() < 54 and 10 < gray.sum() < 54


def test_low_resolution_crops_look_like_a_halved_image_zoomed_back(crops_zip):
    """A crop at factor 0.5 loses the detail that a halved image, zoomed back up by Segmenter's
    own zoom, has lost: it is far closer to that image than to the crop it came from."""
    rgb = histology_crop(crops_zip)
    batch = torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()
    out = simulate_low_resolution(batch, 1.0, np.random.default_rng(0), factors=(0.5, 0.5))[0].permute(1, 2, 0).numpy()
    back = zoom(zoom(rgb, 0.5), 2.0)
    assert out.shape == rgb.shape and abs(out.mean() - rgb.mean()) < 0.01
    h, w = min(back.shape[0], rgb.shape[0]), min(back.shape[1], rgb.shape[1])
    assert np.abs(out - back[:h, :w]).mean() < 0.5 * np.abs(out - rgb).mean()
    unchanged = simulate_low_resolution(batch, 1.0, np.random.default_rng(0), factors=(1.0, 1.0))
    torch.testing.assert_close(unchanged, batch, atol=1e-5, rtol=0)


def test_low_resolution_is_drawn_per_crop_and_spares_the_rest():
    images = torch.rand(64, 3, 32, 32)
    out = simulate_low_resolution(images, 0.3, np.random.default_rng(0))
    changed = (out - images).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert 8 < changed.sum() < 32
    torch.testing.assert_close(out[~changed], images[~changed])
    assert simulate_low_resolution(images, 0.0, np.random.default_rng(0)) is images
