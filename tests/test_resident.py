"""The device-resident inference path (infer.Resident: tiles cut, run, weighted and blended as
torch tensors on the engine's device, CUDA in production) against the numpy path (infer.Host),
run here on CPU tensors; and the defaults that fit the image: tiles from a memory budget, TTA
by size, rows read ahead."""


import numpy as np
import pytest
import torch
from test_blocks import crowded_mosaic

from nucleoflow.engine import load_engine
from nucleoflow.infer import Host, Resident, backend_for, predict_rows, tile_side, uses_tta
from nucleoflow.metrics import image_scores
from nucleoflow.normalize import normalize
from nucleoflow.options import Tiling
from nucleoflow.postprocess import instances
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path

SHIPPED = model_path("dsb2018_unet")


@pytest.fixture(scope="module")
def torch_engine():
    return load_engine(SHIPPED, "torch", threads=2, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def mosaic(crops_zip):
    """A real 512 px image (four crowded crops), cut to an odd size so tiles are padded."""
    return normalize(crowded_mosaic(crops_zip)[:, :, None])[:, :437, :501]


def bands(engine, image, tiling, resident):
    _, height, width = image.shape
    return list(predict_rows(lambda y0, y1: image[:, y0:y1], height, width, engine, tiling, resident=resident))


@pytest.mark.parametrize(
    "tiling",
    [
        Tiling(tile=128, overlap=0.25, batch_size=3, tta=False),  # 4x5 tiles, batches across a tile row
        Tiling(tile=256, overlap=0.125, batch_size=1, tta=True),  # TTA: rotations and flips on tensors
        Tiling(tile=512, tta=False),  # one tile: no blending
    ],
)
def test_resident_blending_equals_the_numpy_path(torch_engine, mosaic, tiling):
    """Same bands, bit for bit: cutting, weighting, blending and dihedral TTA in torch are the
    numpy path's operations in the same order."""
    host, resident = bands(torch_engine, mosaic, tiling, False), bands(torch_engine, mosaic, tiling, True)
    assert [top for top, _ in host] == [top for top, _ in resident]
    assert len(host) > 1 or tiling.tile == 512
    for (_, a), (_, b) in zip(host, resident):
        assert isinstance(b, np.ndarray) and b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    whole = np.concatenate([p for _, p in resident], axis=1)
    assert whole.shape == (3, 437, 501)
    assert 0.05 < whole[1:].sum(axis=0).mean() < 0.9  # nuclei found: real probabilities, not padding


def test_torch_engines_blend_resident_by_default(torch_engine):
    """The default path by engine (the two paths give the same bands, so comparing their outputs
    could not tell which one ran): PyTorch engines on the device, the others in numpy."""
    assert isinstance(backend_for(torch_engine), Resident)
    assert isinstance(backend_for(load_engine(SHIPPED, "openvino", threads=2)), Host)
    assert isinstance(backend_for(torch_engine, resident=False), Host)


def test_resident_path_agrees_with_openvino_on_the_host(torch_engine, mosaic):
    """Both paths as used: OpenVINO blended in numpy, PyTorch blended as tensors."""
    tiling = Tiling(tile=128, overlap=0.25, tta=False)
    openvino = load_engine(SHIPPED, "openvino", threads=2)
    a = np.concatenate([p for _, p in bands(openvino, mosaic, tiling, None)], axis=1)
    b = np.concatenate([p for _, p in bands(torch_engine, mosaic, tiling, None)], axis=1)
    assert np.abs(a - b).max() < 1e-3


def test_tile_side_comes_from_the_memory_budget(torch_engine):
    """The shipped model needs about 430 B a pixel: 2048 MB gives windows of 2224 px, so a
    2048 px image is one window; a batch of 4 shares the same memory; a given tile wins."""
    side = tile_side(Tiling(), torch_engine)
    assert side % torch_engine.multiple == 0
    assert 2048 <= side < 2400
    assert side * side * torch_engine.bytes_per_pixel <= Tiling().memory_mb * 2**20
    assert tile_side(Tiling(batch_size=4), torch_engine) <= side // 2 + torch_engine.multiple
    assert tile_side(Tiling(memory_mb=64), torch_engine) >= torch_engine.multiple
    assert tile_side(Tiling(tile=256), torch_engine) == 256


def test_default_tiling_predicts_a_2048_px_image_in_one_window(torch_engine):
    calls = []

    class Counting:
        multiple, n_classes, bytes_per_pixel = torch_engine.multiple, 3, torch_engine.bytes_per_pixel

        def __call__(self, batch):
            calls.append(batch.shape)
            return np.zeros((len(batch), 3, *batch.shape[2:]), np.float32)

    list(predict_rows(lambda y0, y1: np.zeros((3, y1 - y0, 2048), np.float32), 2048, 2048, Counting(), Tiling(tta=False)))
    assert calls == [(1, 3, 2048, 2048)]


@pytest.mark.parametrize(("megapixels", "expected"), [(0.25, True), (1.44, True), (2.0, True), (4.2, False), (100.0, False)])
def test_tta_by_image_size(megapixels, expected):
    side = int(np.sqrt(megapixels * 1e6))
    assert uses_tta(Tiling(), side, side) == expected
    assert uses_tta(Tiling(tta_max_mp=0), side, side)  # 0: any size
    assert not uses_tta(Tiling(tta=False), side, side)


def test_segmenter_skips_tta_above_the_size_limit(crops_zip):
    """On a real image, a limit below its size gives the labels of tta=False, not of tta=True."""
    image = crowded_mosaic(crops_zip)[:256, :256]
    plain = Segmenter(SHIPPED, tta=False)(image)
    limited = Segmenter(SHIPPED, tta=True, tta_max_mp=0.05)(image)
    augmented = Segmenter(SHIPPED, tta=True)(image)
    np.testing.assert_array_equal(limited, plain)
    assert not np.array_equal(augmented, plain)


def test_bf16_autocast_keeps_the_nuclei(torch_engine, crops_zip):
    """The documented tolerance of CUDA's bf16 autocast against fp32 (run here with the CPU's
    bf16): probabilities within 0.06 (measured 0.04 max, 2e-4 mean on this image) and the same
    nuclei after the postprocess."""
    image = torch.from_numpy(normalize(crowded_mosaic(crops_zip)[:, :, None])[None]).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fp32 = torch_engine.net(image)[0].numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = torch_engine.net(image)[0].float().numpy()
    assert np.abs(fp32 - bf16).max() < 0.06
    assert np.abs(fp32 - bf16).mean() < 1e-3
    scores = image_scores(instances(fp32), instances(bf16))
    assert scores["n_true"] > 200 and scores["ap_0.50"] >= 0.99
