"""Block-wise postprocess in worker processes: megapixels per second with 1 worker and with N.

    python benchmarks/postprocess.py [--model dsb2018_unet|path/to/model.pt] [--side 4096] [--workers 2] [--threads 2]

The image is a mosaic of real DSB2018 images (benchmarks/throughput.py: the archive's, else the
committed crops), predicted once without TTA; then its probabilities are labelled block by
block as `segment` labels them (blocks.label_probability_bands, default block and context),
with 1 worker (in this process) and with --workers processes, best of --repeats. The workers
are kept from one call to the next, as a Segmenter keeps them; the first call, which starts
them (spawned interpreters importing the postprocess), is printed apart: in `segment` that
start overlaps the prediction of the first blocks. Labels must be identical.
"""

import argparse
import time

import numpy as np
from throughput import mosaic

from nucleoflow.blocks import label_probability_bands
from nucleoflow.engine import load_engine
from nucleoflow.infer import probabilities
from nucleoflow.options import ThresholdSet, Tiling
from nucleoflow.pool import Workers
from nucleoflow.shipped import model_path


def label(probs, thresholds, workers):
    """Seconds and labels of the block-wise postprocess of (n_classes, H, W) probabilities."""
    start = time.perf_counter()
    bands = label_probability_bands(iter([(0, probs)]), probs.shape[1:], Tiling(), thresholds, workers=workers)
    labels = np.concatenate([rows for _, rows in bands])
    return time.perf_counter() - start, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="the network's threads, for the one prediction")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = model_path(args.model)
    engine = load_engine(path, "auto", args.threads)
    thresholds = ThresholdSet.from_json(engine.metadata["postprocess"], head=engine.head.name).default  # the model card's tuned values
    probs = probabilities(engine, mosaic(args.side), Tiling(tta=False))
    megapixels, tiling = args.side**2 / 1e6, Tiling()
    print(f"{args.side}x{args.side} mosaic, probabilities predicted once; blocks of {tiling.block} px with {tiling.context} px of context")
    with Workers(args.workers) as workers:
        first_s, _ = label(probs, thresholds, workers)
        many_s, many = min((label(probs, thresholds, workers) for _ in range(args.repeats)), key=lambda run: run[0])
    one_s, one = min((label(probs, thresholds, 1) for _ in range(args.repeats)), key=lambda run: run[0])
    if not np.array_equal(one, many):
        raise SystemExit(f"labels differ between 1 and {args.workers} workers")
    print(f"{'workers':>7} {'seconds':>8} {'MP/s':>7}")
    print(f"{1:>7} {one_s:8.2f} {megapixels / one_s:7.2f}")
    print(f"{args.workers:>7} {many_s:8.2f} {megapixels / many_s:7.2f}   (first call, starting them: {first_s:.2f} s)")
    print(f"ratio {args.workers}/1 workers: {one_s / many_s:.2f}x (target {0.8 * args.workers:.1f}x); labels identical ({one.max()} nuclei)")


if __name__ == "__main__":
    main()
