"""Robustness to scale and stain: the validation images rescaled and stain-jittered, and MoNuSeg.

    python benchmarks/robustness.py --data results/data [--models dsb2018_unet path/to/candidate.pt]
        [--monuseg ../shared/data/monuseg/monuseg_test.zip] [--scales 0.5 0.75 1.5 2] [--tta]

--data is a folder written by the preprocess rule with the model card's split (as for
benchmarks/quality.py); only its **validation** images are used, so the figures may guide
decisions. Each model runs through nucleoflow.segment.Segmenter (the segment rule's code,
thresholds from its card) on:
  - the unchanged validation images;
  - the same images rescaled by each factor (bilinear, anti-aliased when shrinking; labels by
    nearest neighbour), i.e. nuclei that many times larger or smaller than in the archive;
  - the colour validation images stain-jittered in HED space (each stain's amount scaled by
    0.6-1.4 and shifted, per image, seeded), beside those images unchanged;
  - MoNuSeg's H&E test images (never trained on), when the archive is given.
Prints per model and variant: DSB (mean over images), AP@0.5 pooled over images, the ratio of
nuclei found to true nuclei, and the DSB difference to the unchanged images it derives from.
Target (issue 12): every rescaled or stained variant within 0.03 DSB of the unchanged images.
"""

import argparse
import time
from pathlib import Path

import pandas as pd

from nucleoflow.robustness import TARGET, archive_examples, robustness_table, split_examples, worst_variant
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder written by the preprocess rule (the model card's split)")
    parser.add_argument("--models", nargs="+", default=["dsb2018_unet"], help="shipped model names or model.pt paths")
    parser.add_argument("--monuseg", type=Path, help="monuseg_test.zip (images/ + labels/ layout)")
    parser.add_argument("--scales", nargs="+", type=float, default=[0.5, 0.75, 1.5, 2.0])
    parser.add_argument("--tta", action="store_true", help="8x test-time augmentation (8x slower)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="also write the table to this CSV")
    args = parser.parse_args()

    val = split_examples(args.data)
    extra = {"MoNuSeg test (H&E)": archive_examples(args.monuseg)} if args.monuseg else None
    print(f"validation split: {len(val)} images of {args.data}")
    tables = []
    for model in args.models:
        start = time.perf_counter()
        segmenter = Segmenter(model_path(model), tta=args.tta, threads=args.threads)
        table = robustness_table(segmenter, val, args.scales, extra).assign(model=str(model))
        print(f"{model}: {time.perf_counter() - start:.0f} s", flush=True)
        tables.append(table)
    frame = pd.concat(tables, ignore_index=True)[
        ["model", "variant", "images", "DSB", "AP@0.5 pooled", "count ratio", "DSB - unchanged", "DSB if labelled as unchanged"]
    ]
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for model, rows in frame.groupby("model", sort=False):
        worst = worst_variant(rows)
        verdict = "within" if worst["DSB - unchanged"] >= -TARGET else "NOT within"
        print(f"{model}: worst variant {worst['variant']} {worst['DSB - unchanged']:+.3f} DSB: {verdict} {TARGET} of the unchanged images")
    if args.csv:
        frame.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
