"""Peak memory and time of `segment` on a huge image: labels alone against all five outputs.

    python benchmarks/large_image.py [--model dsb2018_unet|path/to/model.pt] [--side 10000] [--threads 2]

The image is an 8-bit gray, tiled zlib TIFF (read tile by tile) made of real DSB2018 images
(throughput.mosaic), repeated with flips so nuclei cross every block border. Each run
segments it in a fresh process through Segmenter.to_files, the code path of the segment rule
(without test-time augmentation), which reports its own peak RSS (getrusage); the table ends
with all outputs / labels alone.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
from throughput import mosaic  # noqa: E402

CHILD = """
import resource
from nucleoflow.segment import Segmenter
row = Segmenter({model!r}, threads={threads}, tta=False).to_files({image!r}, {out!r}, {outputs!r}, pixel_size_um=0.5)
print(row["nuclei"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
ALL = ["labels", "measurements", "geojson", "imagej_rois", "ome_zarr"]


def make_image(path, side):
    """side x side image from a 2048 mosaic repeated with flips."""
    base = mosaic(2048)[..., 0]
    reps = -(-side // 2048)
    rows = [np.concatenate([base[:: 1 - 2 * ((i + j) % 2)] for j in range(reps)], axis=1) for i in range(reps)]
    tifffile.imwrite(path, np.concatenate(rows, axis=0)[:side, :side], tile=(512, 512), compression="zlib")


def segment(model, image, out, outputs, threads):
    code = CHILD.format(model=model, image=str(image), out=str(out), outputs=outputs, threads=threads)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    count, peak_kib = result.stdout.split()[-2:]  # the child's own peak RSS (ru_maxrss, KiB)
    return seconds, int(peak_kib) / 1024, int(count)


def size_mib(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20 if path.is_dir() else path.stat().st_size / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--side", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "image.tif"
        make_image(image, args.side)
        print(f"{args.side}x{args.side} 8-bit tiled zlib TIFF, {args.threads} threads, no TTA")
        print(f"{'outputs':<12} {'seconds':>8} {'peak RSS':>10} {'nuclei':>8}  files (MiB)")
        runs = {}
        for name, outputs in (("labels", ["labels"]), ("all five", ALL)):
            out = Path(tmp) / name.replace(" ", "_")
            runs[name] = segment(args.model, image, out, outputs, args.threads)
            seconds, peak, count = runs[name]
            files = ", ".join(f"{p.name} {size_mib(p):.1f}" for p in sorted(out.iterdir()))
            print(f"{name:<12} {seconds:8.1f} {peak:7.0f} MiB {count:8d}  {files}")
        (t0, m0, _), (t1, m1, _) = runs["labels"], runs["all five"]
        print(f"{'ratio':<12} {t1 / t0:7.2f}x {m1 / m0:9.2f}x")


if __name__ == "__main__":
    main()
