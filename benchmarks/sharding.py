"""One huge image over several jobs: one job against N parts (one per node) and the gather.

    python benchmarks/sharding.py [--model dsb2018_unet] [--side 10000] [--parts 4] [--threads 2] [--workers 1]

The image is large_image.py's (8-bit gray tiled zlib TIFF of real DSB2018 images repeated with
flips). Each run is a fresh process, as a cluster job is: one job labels the whole image
(Segmenter.to_files, the segment rule's path, no TTA); then the N parts run one after another
(Segmenter.to_part, what each segment_shard job does), then the gather (shards.merge_parts).
On N nodes the parts run at once, so the wall time there is the slowest part plus the gather:
the projected speed-up is one job's time over that critical path. Parts predict again the tile
rows at their borders: the table gives each part's tiles and the work overhead (all parts and
the gather over one job). The joined labels and measurements are checked to equal one job's.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import zarr
from large_image import make_image  # benchmarks/ is the script's folder

CHILD = """
import io
from tqdm import tqdm
from nucleoflow.segment import Segmenter
tiles = tqdm(file=io.StringIO())
with Segmenter({model!r}, threads={threads}, workers={workers}, tta=False, block={block}, context={context}) as segmenter:
    {call}
print(tiles.total)
"""
SINGLE = "segmenter.to_files({image!r}, {out!r}, {outputs!r}, tiles=tiles)"
PART = "segmenter.to_part({image!r}, {out!r}, {outputs!r}, ({k}, {n}), tiles=tiles)"
GATHER = """
from nucleoflow.shards import merge_parts
merge_parts({dirs!r}, {out!r}, "image")
"""


def run(code):
    """Seconds and stdout of `code` in a fresh Python process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return seconds, result.stdout


def same_labels(a, b, band=1024):
    """Whether two label TIFFs are equal, compared a band of rows at a time."""
    with tifffile.TiffFile(a) as ta, tifffile.TiffFile(b) as tb:
        za, zb = (zarr.open(t.series[0].aszarr(), mode="r") for t in (ta, tb))
        za, zb = (z["0"] if isinstance(z, zarr.Group) else z for z in (za, zb))
        return za.shape == zb.shape and all(np.array_equal(za[y : y + band], zb[y : y + band]) for y in range(0, za.shape[0], band))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--side", type=int, default=10000)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="processes that label blocks beside the network, in each job")
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--outputs", nargs="+", default=["labels", "measurements"])
    args = parser.parse_args()
    settings = dict(model=args.model, threads=args.threads, workers=args.workers, block=args.block, context=args.context)
    with tempfile.TemporaryDirectory() as tmp:
        tmp, n = Path(tmp), args.parts
        image = tmp / "image.tif"
        make_image(image, args.side)
        print(f"{args.side}x{args.side} 8-bit tiled zlib TIFF, {args.threads} threads, {args.workers} workers, no TTA, block {args.block}, context {args.context}, outputs {args.outputs}")
        call = SINGLE.format(image=str(image), out=str(tmp / "one_job"), outputs=args.outputs)
        single, out = run(CHILD.format(call=call, **settings))
        print(f"{'one job':<10} {single:8.1f} s {int(out.split()[-1]):6d} tiles")
        parts = []
        for k in range(1, n + 1):
            call = PART.format(image=str(image), out=str(tmp / "parts" / f"{k}"), outputs=args.outputs, k=k, n=n)
            seconds, out = run(CHILD.format(call=call, **settings))
            parts.append(seconds)
            print(f"{f'part {k}/{n}':<10} {seconds:8.1f} s {int(out.split()[-1]):6d} tiles")
        (tmp / "joined").mkdir()
        dirs = [str(d) for d in sorted((tmp / "parts").iterdir())]
        gather, _ = run(GATHER.format(dirs=dirs, out=str(tmp / "joined")))
        print(f"{'gather':<10} {gather:8.1f} s")
        critical = max(parts) + gather
        print(f"critical path on {n} nodes (slowest part + gather): {critical:.1f} s; projected speed-up {single / critical:.2f}x")
        print(f"work overhead (parts + gather) / one job: {(sum(parts) + gather) / single:.2f}x")
        identical = same_labels(tmp / "one_job" / "image.tif", tmp / "joined" / "image.tif")
        if "measurements" in args.outputs:
            identical &= (tmp / "one_job" / "image.csv").read_bytes() == (tmp / "joined" / "image.csv").read_bytes()
        print(f"joined outputs identical to one job's: {identical}")


if __name__ == "__main__":
    main()
