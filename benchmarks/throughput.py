"""Predict and postprocess throughput against this machine's fp32 FMA peak, in one run.

    python benchmarks/throughput.py [--model dsb2018_unet|path/to/model.pt] [--side 2048] [--device cuda]

Prints the FMA peak (benchmarks/peak.py), the model's forward GFLOP per megapixel, a naive
baseline (whole image in one eager fp32 NCHW pass, BatchNorm unfused), then each engine and
tiling as MP/s, fraction of the peak and speed-up over the baseline, the largest difference
from the eager model, and the postprocess MP/s. The image is a mosaic of real DSB2018 images
(the archive's when ../shared/data/dsb2018 is present, else the committed crops).
With --device cuda (use --side 10000) it prints GPU figures instead (device_section): the naive
fp32 whole-image pass on the GPU, predict blended in numpy and device-resident (bf16 autocast,
channels_last), and end-to-end segment of a TIFF with the GPU's utilisation.
Last, OpenVINO's time per layer type on one 1024x1024 tile, with the convolutions' own fraction
of the peak: predict cannot go faster than its convolutions.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]

from peak import fma_peak  # noqa: E402

from nucleoflow.decode import decode_image  # noqa: E402
from nucleoflow.engine import OpenVinoEngine, load_engine  # noqa: E402
from nucleoflow.infer import predict_rows, predict_tiled, tile_side  # noqa: E402
from nucleoflow.model import load_model  # noqa: E402
from nucleoflow.normalize import normalize  # noqa: E402
from nucleoflow.options import Tiling  # noqa: E402
from nucleoflow.postprocess import instances  # noqa: E402
from nucleoflow.reader import to_hwc  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "dsb2018" / "stage1_train.zip"
CROPS = ROOT / ".test" / "data" / "dsb2018_crops.zip"
# (engine, tile, overlap): the default (tile 0: the largest window memory_mb allows: one for a
# 2048 px image), small tiles with a wide overlap, then larger tiles with thin overlaps, then
# one tile for the whole (default-sized) image, which wastes no pixels on overlaps.
SETTINGS = [
    ("auto", 0, 0.0625),
    ("openvino", 256, 0.25),
    ("openvino", 512, 0.125),
    ("openvino", 1024, 0.0625),
    ("onnx", 1024, 0.0625),
    ("torch", 1024, 0.0625),
    ("openvino", 2048, 0.0),
]


def mosaic(side):
    """A side x side gray image tiled from real 256x256 DSB2018 images: the archive's when
    ../shared/data/dsb2018 is present, else the committed validation crops (repeated)."""
    archive_path, prefix = (ARCHIVE, None) if ARCHIVE.exists() else (CROPS, "images/")
    tiles, n = [], side // 256
    with zipfile.ZipFile(archive_path) as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".png") and (name.startswith(prefix) if prefix else "/images/" in name))
        for name in names:
            image = to_hwc(decode_image(archive.read(name), name), name)
            if image.shape == (256, 256, 1):
                tiles.append(image)
            if len(tiles) == n * n:
                break
    tiles = [tiles[i % len(tiles)] for i in range(n * n)]
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


def gpu_utilisation():
    """Start sampling the GPU's utilisation (nvidia-smi, every 100 ms); the returned stop() gives
    the mean and max in percent, or None where nvidia-smi is absent (a CPU smoke run)."""
    if not shutil.which("nvidia-smi"):
        return lambda: None
    command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
    sampler = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def stop():
        sampler.terminate()
        values = [int(v) for v in sampler.communicate()[0].split() if v.isdigit()]
        return (sum(values) / len(values), max(values)) if values else None

    return stop


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive_whole_image(model, image, device):
    """The naive baseline: the whole image in one eager fp32 NCHW pass on the device (BatchNorm
    unfused, no autocast): (seconds, probabilities). Where the pass does not fit (memory, or a
    kernel's 32-bit index limit: a 10000 px image's full-resolution activations hold over 2**31
    values), the top-left quarter, halving until it runs: (seconds, probabilities of that part)."""
    eager = load_engine(model, "eager", device=device)
    while True:
        inputs = torch.from_numpy(np.ascontiguousarray(image[None])).to(device)

        def run(inputs=inputs):
            with torch.no_grad():
                out = eager.net(inputs)
            synchronize(device)
            return out

        try:
            seconds, probs = timed(run, repeats=2)
            return seconds, probs[0].cpu().numpy()
        except RuntimeError as exc:  # torch.OutOfMemoryError is one
            print(f"naive pass on {image.shape[2]}x{image.shape[1]} failed ({str(exc).splitlines()[0][:120]}); trying the top-left quarter")
            del inputs
            if device.type == "cuda":
                torch.cuda.empty_cache()
            half = image.shape[1] // 2 // 16 * 16, image.shape[2] // 2 // 16 * 16
            image = image[:, : half[0], : half[1]]


def device_section(model, side, device, threads, workers):
    """Rows for a device: predict MP/s of the numpy-blended path (tiles to the device and back one
    batch at a time), of the device-resident path and of the naive fp32 pass, then end-to-end
    segment (decode, predict, postprocess, write labels and measurements) of a side x side TIFF,
    with the GPU's utilisation. Runs on the CPU too (a smoke test of this prepared script)."""
    from large_image import make_image  # the 8-bit tiled zlib TIFF of the large-image benchmark

    from nucleoflow.segment import Segmenter

    megapixels = side * side / 1e6
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; model {gflop_per_mp(model):.1f} GFLOP/MP; image {side}x{side} ({megapixels:.1f} MP), no TTA")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.tif"
        make_image(path, side)
        image = normalize(tifffile.imread(path)[..., None])
        baseline_s, reference = naive_whole_image(model, image, device)
        baseline_s *= megapixels / (reference.shape[1] * reference.shape[2] / 1e6)  # per pixel, should it have run on a part
        print(f"{'naive: whole image, eager fp32 NCHW unfused':<56} {megapixels / baseline_s:8.1f} MP/s  (on {reference.shape[2]}x{reference.shape[1]} px)")
        engine = load_engine(model, "torch", threads, device)
        interior = slice(64, -64)  # away from the image edge, where tiles and the whole image pad differently
        for label, tiling, resident in (
            ("numpy-blended: tile 1024, batch 1", Tiling(tile=1024, tta=False), False),
            ("resident: tile 1024, batch 4", Tiling(tile=1024, batch_size=4, tta=False), True),
            ("resident: default tiling (memory_mb)", Tiling(tta=False), True),
            ("resident: memory_mb 16384, batch 4", Tiling(memory_mb=16384, batch_size=4, tta=False), True),
        ):

            def run(tiling=tiling, resident=resident):
                bands = predict_rows(lambda y0, y1: image[:, y0:y1], side, side, engine, tiling, resident=resident)
                return np.concatenate([p for _, p in bands], axis=1)

            seconds, probs = timed(run)
            part = probs[:, : reference.shape[1], : reference.shape[2]]
            diff = np.abs(part[:, interior, interior] - reference[:, interior, interior]).max()
            print(f"{'predict, ' + label:<56} {megapixels / seconds:8.1f} MP/s  {baseline_s / seconds:5.2f}x naive  max |p - naive| {diff:.1e}")
        segmenter = Segmenter(model, threads=threads, tta=False, workers=workers)
        stop = gpu_utilisation()
        start = time.perf_counter()
        row = segmenter.to_files(path, Path(tmp) / "out", ["labels", "measurements"])
        seconds = time.perf_counter() - start
        busy = stop()
        usage = f"GPU busy {busy[0]:.0f}% mean, {busy[1]}% max" if busy else "GPU utilisation: no nvidia-smi"
        print(f"{f'segment end to end, {workers} postprocess workers':<56} {megapixels / seconds:8.1f} MP/s  ({seconds:.1f} s, {row['nuclei']} nuclei; {usage})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--side", type=int, default=2048, help="image side in pixels (a multiple of 256)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="postprocess workers of the GPU section's segment")
    args = parser.parse_args()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device here")
        return device_section(args.model, args.side, torch.device("cuda"), args.threads, args.workers)

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
        label = f"predict: {name}, tile {tile}, overlap {overlap}" if tile else f"predict: defaults (tile {tile_side(Tiling(), engine)})"
        row(label, seconds, f"max |p - whole-image eager| {diff:.1e}")
        if not tile:
            continue  # the default's window is one of the rows below
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
