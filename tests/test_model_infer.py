import numpy as np
import pytest
import torch

from nucleoflow.engine import load_engine
from nucleoflow.infer import _starts, fit_tile, gaussian_weight, predict_tiled, probabilities
from nucleoflow.model import UNet, load_model, save_model
from nucleoflow.normalize import normalize
from nucleoflow.options import Tiling


class Pointwise:
    """A 1x1-conv 'network' engine: tiling must reproduce its whole-image output exactly."""

    multiple = 16
    n_classes = 3

    def __init__(self):
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 1)

    @torch.no_grad()
    def __call__(self, batch):
        return torch.softmax(self.conv(torch.from_numpy(np.ascontiguousarray(batch))), 1).numpy()


@pytest.mark.parametrize("shape", [(3, 300, 517), (3, 40, 70), (3, 256, 256), (3, 17, 255)])
def test_tiled_equals_whole_image(shape):
    engine = Pointwise()
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    tiled = predict_tiled(engine, image, Tiling(tile=128, overlap=0.25, batch_size=3, tta=False))
    whole = engine(image[None])[0]
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 256, 256), (3, 200, 300)])
def test_one_tile_is_the_engine_output_itself(shape):
    """An image within one tile gets the network's output, padding cropped, with no blending error."""
    engine = Pointwise()
    image = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    tiled = predict_tiled(engine, image, Tiling(tile=512, overlap=0.25, tta=False))
    padded = np.pad(image, ((0, 0), (0, -shape[1] % 16), (0, -shape[2] % 16)), mode="reflect")
    np.testing.assert_array_equal(tiled, engine(padded[None])[0][:, : shape[1], : shape[2]])


@pytest.mark.parametrize("size", [17, 256, 1000, 1024, 1025, 2048, 3000, 10240])
def test_fitted_tiles_cover_the_image_with_fewer_pixels(size):
    tile, margin = 1024, 64
    fitted = fit_tile(size, tile, margin, 16)
    assert fitted % 16 == 0 and fitted <= max(tile, size + 15)
    full = max(size, fitted)
    starts = _starts(full, fitted, max(1, fitted - margin))
    assert starts[-1] + fitted == full  # covered to the last pixel
    assert all(b - a <= fitted - margin for a, b in zip(starts, starts[1:]))  # every seam overlaps by >= margin
    assert len(starts) == (1 if size <= tile else len(_starts(size, tile, tile - margin)))
    if size == 2048:
        assert len(starts) ** 2 * fitted**2 < 1.2 * size**2  # 9 tiles of 1024 would compute 2.25x the image


def test_tta_averages_the_eight_dihedral_predictions(tmp_path):
    torch.manual_seed(0)
    save_model(UNet(depth=2, base_width=4).eval(), tmp_path / "model.pt")
    engine = load_engine(tmp_path / "model.pt", "eager")
    image = np.random.default_rng(2).normal(size=(3, 48, 64)).astype(np.float32)
    expected = np.mean(
        [
            np.rot90(engine(np.ascontiguousarray(np.rot90(image[None, :, :, ::-1] if f else image[None], k, (2, 3))))[0], -k, (1, 2))[..., :: -1 if f else 1]
            for k in range(4)
            for f in (0, 1)
        ],
        axis=0,
    )
    plain = predict_tiled(engine, image, Tiling(tile=64, tta=False))
    augmented = predict_tiled(engine, image, Tiling(tile=64, tta=True))
    np.testing.assert_allclose(augmented, expected, atol=1e-5)
    assert np.abs(augmented - plain).max() > 1e-3  # a random net is not rotation invariant


def test_gaussian_weight_peaks_in_centre_and_stays_positive():
    weight = gaussian_weight((64, 96))
    assert weight.shape == (64, 96) and weight.min() > 0
    assert weight[31:33, 47:49].min() == pytest.approx(weight.max(), rel=1e-3)
    assert weight[0, 0] < 0.01


@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
def test_unet_shapes(norm):
    model = UNet(depth=3, base_width=4, norm=norm).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 48, 64)).shape == (2, 3, 48, 64)


def test_save_load_roundtrip(tmp_path):
    model = UNet(depth=2, base_width=4).eval()
    save_model(model, tmp_path / "model.pt", epoch=3, val_dsb=0.5)
    loaded, meta = load_model(tmp_path / "model.pt")
    assert meta["epoch"] == 3 and (tmp_path / "model.json").exists()
    image = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        np.testing.assert_allclose(model(image).numpy(), loaded(image).numpy(), atol=1e-5)
    raw = np.random.default_rng(0).integers(0, 255, (50, 70)).astype(np.uint8)
    assert probabilities(load_engine(tmp_path / "model.pt", "eager"), raw, Tiling(tile=64, tta=False)).shape == (3, 50, 70)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((40, 50), np.uint16) + np.arange(50, dtype=np.uint16) * 1000,
        np.zeros((40, 50, 3), np.uint8) + np.arange(50, dtype=np.uint8)[:, None],
        np.zeros((40, 50, 4), np.uint8) + np.arange(50, dtype=np.uint8)[:, None],
    ],
)
def test_normalize_any_input(image):
    from nucleoflow.reader import to_hwc

    x = normalize(to_hwc(image, "test", channel="rgb" if image.shape[-1] == 4 else None))  # a bare RGBA array must say
    assert x.shape == (3, 40, 50) and x.dtype == np.float32
    assert -0.51 <= x.min() and x.max() <= 1.51


def test_bright_background_is_inverted():
    dark_nuclei = np.full((64, 64, 1), 200, np.uint8)
    dark_nuclei[20:30, 20:30] = 20
    x = normalize(dark_nuclei)
    assert x[0, 25, 25] > x[0, 5, 5]
