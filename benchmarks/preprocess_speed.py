"""How fast preprocess builds instance labels from the Kaggle layout's masks, in one run.

    python benchmarks/preprocess_speed.py [--archive ../shared/data/dsb2018/stage1_train.zip] [--images 40]

On the first --images images of the archive (sorted by id, as preprocess reads them), times
dataset.load_labels (each mask read as its stored pixels, Archive.mask) against the same loop
with each mask decoded as an image (Archive.image: the network channels, which judge the mask's
appearance), and checks that both give the same labels. Prints masks/s of each and the ratio.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from nucleoflow.dataset import Archive, find_samples, load_labels

ROOT = Path(__file__).resolve().parents[1]


class MasksAsImages(Archive):
    """The baseline: each mask decoded as an image (its network channels), any channel non-zero."""

    def mask(self, name):
        return self.image(name).max(axis=-1) > 0


def timed(archive, samples, shapes):
    started = time.perf_counter()
    labels = [load_labels(archive, sample, shape) for sample, shape in zip(samples, shapes)]
    return time.perf_counter() - started, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018" / "stage1_train.zip")
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    archive = Archive(args.archive)
    samples = find_samples(archive)[: args.images]
    shapes = [archive.image(s.image).shape[:2] for s in samples]
    masks = sum(len(s.masks) for s in samples)
    print(f"{len(samples)} images, {masks} masks, from {args.archive}")
    base_s, base = timed(MasksAsImages(args.archive), samples, shapes)
    new_s, new = timed(archive, samples, shapes)
    same = all(np.array_equal(a, b) for a, b in zip(base, new))
    print(f"masks decoded as images (network channels)  {masks / base_s:8.1f} masks/s  ({base_s:.1f} s)")
    print(f"masks read as stored pixels (Archive.mask)  {masks / new_s:8.1f} masks/s  ({new_s:.1f} s)  x{base_s / new_s:.1f}")
    print(f"same labels: {same}")


if __name__ == "__main__":
    main()
