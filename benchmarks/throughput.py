"""Predict and postprocess throughput against this machine's fp32 FMA peak, in one run.

    python benchmarks/throughput.py [--model dsb2018_unet|path/to/model.pt] [--side 2048] [--device cuda]

Prints the FMA peak (benchmarks/peak.py), the model's forward GFLOP per megapixel, a naive
baseline (whole image in one eager fp32 NCHW pass, BatchNorm unfused), then each engine and
tiling as MP/s, fraction of the peak and speed-up over the baseline, the largest difference
from the eager model, and the postprocess MP/s. The image is a mosaic of real DSB2018 images
when ../shared/data/dsb2018 is present (postprocess speed depends on the nuclei), else noise.
With --device cuda it prints GPU figures instead: the naive baseline in fp32 on the GPU, and the
torch engine (bf16 autocast, channels_last) with batched tiles.
Last, OpenVINO's time per layer type on one 1024x1024 tile, with the convolutions' own fraction
of the peak: predict cannot go faster than its convolutions.
"""

import argparse
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]

from peak import fma_peak  # noqa: E402

from nucleoflow.engine import OpenVinoEngine, load_engine  # noqa: E402
from nucleoflow.infer import predict_tiled  # noqa: E402
from nucleoflow.io import decode_image, to_hwc  # noqa: E402
from nucleoflow.model import load_model  # noqa: E402
from nucleoflow.normalize import normalize  # noqa: E402
from nucleoflow.options import Tiling  # noqa: E402
from nucleoflow.postprocess import instances  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "dsb2018" / "stage1_train.zip"
# (engine, tile, overlap): the workflow's default tiling, then larger tiles with thin overlaps, then
# one tile for the whole (default-sized) image, which wastes no pixels on overlaps.
SETTINGS = [
    ("openvino", 256, 0.25),
    ("openvino", 512, 0.125),
    ("openvino", 1024, 0.0625),
    ("onnx", 1024, 0.0625),
    ("torch", 1024, 0.0625),
    ("openvino", 2048, 0.0),
]


def mosaic(side):
    """A side x side gray image tiled from real 256x256 DSB2018 images (noise without the data)."""
    if not ARCHIVE.exists():
        print(f"note: {ARCHIVE} absent, using noise (postprocess figures are then meaningless)")
        return (np.random.default_rng(0).random((side, side, 1)) * 255).astype(np.uint8)
    tiles = []
    with zipfile.ZipFile(ARCHIVE) as archive:
        for name in sorted(n for n in archive.namelist() if "/images/" in n and n.endswith(".png")):
            image = to_hwc(decode_image(archive.read(name), name), name)
            if image.shape == (256, 256, 1):
                tiles.append(image)
            if len(tiles) == (side // 256) ** 2:
                break
    n = side // 256
    return np.concatenate([np.concatenate(tiles[i * n : (i + 1) * n], axis=1) for i in range(n)], axis=0)


def gflop_per_mp(model_path):
    engine = load_engine(model_path, "eager", device=torch.device("cpu"))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        engine.net(torch.zeros(1, 3, 512, 512))
    return counter.get_total_flops() / 1e9 / (512 * 512 / 1e6)


def conv_gflop(model_path, tile):
    """GFLOP of the Conv2d and of the ConvTranspose2d layers in one forward pass over a tile."""
    net = load_engine(model_path, "eager", device=torch.device("cpu")).net
    totals = {nn.Conv2d: 0.0, nn.ConvTranspose2d: 0.0}

    def count(module, inputs, output):
        weight = module.weight  # Conv2d: (out, in, kh, kw); ConvTranspose2d: (in, out, kh, kw)
        pixels = (inputs[0] if type(module) is nn.ConvTranspose2d else output).shape[-2:].numel()
        totals[type(module)] += 2 * weight.numel() * pixels / 1e9

    hooks = [m.register_forward_hook(count) for m in net.modules() if type(m) in totals]
    with torch.no_grad():
        net(torch.zeros(1, 3, tile, tile))
    for hook in hooks:
        hook.remove()
    return {"Convolution": totals[nn.Conv2d], "ConvolutionBackpropData": totals[nn.ConvTranspose2d]}


def openvino_layers(model_path, tile, threads, peak_gflops):
    """Where OpenVINO's time goes on one tile, by layer type (its own per-layer counters), and how
    close the convolutions alone come to the peak: the ceiling for any predict built on them."""
    engine = OpenVinoEngine(*load_model(model_path), threads, profile=True)  # predict's engine, timed per layer
    x = np.random.default_rng(0).normal(size=(1, 3, tile, tile)).astype(np.float32)
    best = None
    for _ in range(3):
        engine(x)
        ms = {}
        for layer in engine.request.profiling_info:
            ms[layer.node_type] = ms.get(layer.node_type, 0.0) + layer.real_time.total_seconds() * 1e3
        best = ms if best is None or sum(ms.values()) < sum(best.values()) else best
    gflop = conv_gflop(model_path, tile)
    total = sum(best.values())
    print(f"openvino, one {tile}x{tile} tile, time by layer type ({total:.0f} ms in all):")
    for kind, t in sorted(best.items(), key=lambda item: -item[1]):
        if t < 0.005 * total:
            continue
        rate = f"  {gflop[kind]:5.1f} GFLOP at {gflop[kind] / t * 1e3 / peak_gflops:6.1%} of peak" if kind in gflop else ""
        print(f"  {kind:<26} {t:7.1f} ms {t / total:6.1%}{rate}")


def timed(fn, repeats=2):
    """Best wall time of `repeats` runs (the first also warms up caches and allocators)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def cuda_main(args, flops, image):
    """GPU rows: MP/s of eager fp32 whole-image inference and of bf16 batched tiling."""
    device = torch.device("cuda")
    megapixels = image.shape[1] * image.shape[2] / 1e6
    print(f"device: {torch.cuda.get_device_name(device)}; model {flops:.1f} GFLOP/MP; image {image.shape[2]}x{image.shape[1]} ({megapixels:.2f} MP)")
    eager = load_engine(args.model, "eager", device=device)
    inputs = torch.from_numpy(image[None]).to(device)

    def fp32_whole():
        with torch.no_grad():
            out = eager.net(inputs)  # no autocast: fp32
        torch.cuda.synchronize()
        return out

    baseline_s, reference = timed(fp32_whole, repeats=3)
    reference = reference[0].cpu().numpy()
    print(f"{'naive: whole image, eager fp32 NCHW unfused':<48} {megapixels / baseline_s:8.2f} MP/s  {megapixels / baseline_s * flops / 1e3:7.2f} TFLOP/s")
    engine = load_engine(args.model, "torch", device=device)
    for tile, batch in [(1024, 1), (1024, 4), (512, 16)]:
        seconds, probs = timed(lambda tile=tile, batch=batch: predict_tiled(engine, image, Tiling(tile=tile, overlap=0.0625, batch_size=batch, tta=False)), repeats=3)
        diff = np.abs(probs[:, 64:-64, 64:-64] - reference[:, 64:-64, 64:-64]).max()
        rate = megapixels / seconds
        print(
            f"{f'predict: torch bf16, tile {tile}, batch {batch}':<48} {rate:8.2f} MP/s  {rate * flops / 1e3:7.2f} TFLOP/s  {baseline_s / seconds:5.2f}x baseline  max |p - fp32| {diff:.1e}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--side", type=int, default=2048, help="image side in pixels (a multiple of 256)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    if args.device == "cuda":
        return cuda_main(args, gflop_per_mp(args.model), normalize(mosaic(args.side)))

    peak = fma_peak()
    flops = gflop_per_mp(args.model)
    image = normalize(mosaic(args.side))
    megapixels = args.side**2 / 1e6
    print(f"machine: {peak['cores']} cores, fp32 FMA peak {peak['gflops']:.1f} GFLOP/s ({peak['implied_ghz']:.2f} GHz x 32 FLOP/cycle)")
    print(f"model: {flops:.1f} GFLOP per megapixel (forward); image {args.side}x{args.side} ({megapixels:.2f} MP), {args.threads} threads")

    def row(label, seconds, note=""):
        rate = megapixels / seconds
        print(f"{label:<44} {rate:6.3f} MP/s  {rate * flops / peak['gflops']:6.1%} of peak  {baseline_s / seconds:5.2f}x baseline {note}")

    eager = load_engine(args.model, "eager", args.threads)
    baseline_s, reference = timed(lambda: eager(image[None])[0])
    row("naive: whole image, eager fp32 NCHW unfused", baseline_s)
    probs = None
    for name, tile, overlap in SETTINGS:
        engine = load_engine(args.model, name, args.threads)
        seconds, probs = timed(lambda engine=engine, tile=tile, overlap=overlap: predict_tiled(engine, image, Tiling(tile=tile, overlap=overlap, batch_size=1, tta=False)), repeats=3)
        interior = slice(64, -64)  # away from the image edge, where tiles and the whole image pad differently
        diff = np.abs(probs[:, interior, interior] - reference[:, interior, interior]).max()
        row(f"predict: {name}, tile {tile}, overlap {overlap}", seconds, f"max |p - whole-image eager| {diff:.1e}")
        forward = np.ascontiguousarray(image[None, :, :tile, :tile])
        seconds, out = timed(lambda engine=engine, forward=forward: engine(forward), repeats=3)
        rate = tile * tile / 1e6 / seconds
        print(
            f"{'  forward pass alone, one ' + str(tile) + 'x' + str(tile) + ' tile':<44} {rate:6.3f} MP/s  {rate * flops / peak['gflops']:6.1%} of peak  (max |p - eager| {np.abs(out - eager(forward)).max():.1e})"
        )
    seconds, labels = timed(lambda: instances(probs))
    print(f"{'postprocess: seeded watershed':<44} {megapixels / seconds:6.3f} MP/s  ({labels.max()} nuclei)")
    openvino_layers(args.model, 1024, args.threads, peak["gflops"])


if __name__ == "__main__":
    main()
