"""Peak memory and speed of `segment` on huge images, at two sizes, to show how memory grows.

    python benchmarks/large_image.py [--model dsb2018_unet|path/to/model.pt] [--sides 5120 10240]

Each image is an 8-bit gray TIFF tiled from real DSB2018 images (noise without the data) and is
segmented in a fresh process through Segmenter.to_tiff, the code path of the segment rule, which
reports its own peak RSS (getrusage). Images are written uncompressed (memory-mapped reads)
and as tiled zlib TIFFs (read tile by tile).
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
count = Segmenter({model!r}, threads={threads}).to_tiff({image!r}, {labels!r})
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_image(path, side, tiled):
    """side x side image from a 2048 mosaic repeated with flips (so nuclei cross every block border)."""
    base = mosaic(2048)[..., 0]
    reps = -(-side // 2048)
    rows = [np.concatenate([base[:: 1 - 2 * ((i + j) % 2)] for j in range(reps)], axis=1) for i in range(reps)]
    image = np.concatenate(rows, axis=0)[:side, :side]
    options = {"tile": (512, 512), "compression": "zlib"} if tiled else {}
    tifffile.imwrite(path, image, **options)


def segment(model, image, labels, threads):
    code = CHILD.format(model=model, image=str(image), labels=str(labels), threads=threads)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    count, peak_kib = result.stdout.split()[-2:]  # the child's own peak RSS (ru_maxrss, KiB)
    return seconds, int(peak_kib) / 1024, int(count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--sides", type=int, nargs="+", default=[5120, 10240])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{'image':<34} {'MP':>6} {'seconds':>8} {'MP/s':>6} {'peak RSS':>10} {'nuclei':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for side in sorted(args.sides):
            for tiled in (False, True):
                image = Path(tmp) / f"image_{side}_{tiled}.tif"
                make_image(image, side, tiled)
                seconds, peak_mib, count = segment(args.model, image, Path(tmp) / "labels.tif", args.threads)
                labels = tifffile.TiffFile(Path(tmp) / "labels.tif")
                assert labels.pages[0].shape == (side, side) and labels.pages[0].is_tiled
                labels.close()
                kind = "tiled zlib TIFF" if tiled else "uncompressed TIFF (memmap)"
                mp = side * side / 1e6
                print(f"{side}x{side} {kind:<24} {mp:6.1f} {seconds:8.1f} {mp / seconds:6.2f} {peak_mib:7.0f} MiB {count:8d}")
                image.unlink()


if __name__ == "__main__":
    main()
