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
  - the colour validation images stain-jittered in HED space (colour deconvolution: each stain's
    amount scaled by 0.6-1.4 and shifted, per image, seeded), beside those images unchanged;
  - MoNuSeg's H&E test images (never trained on), when the archive is given.
Prints per model and variant: DSB (mean over images), AP@0.5 pooled over images, the ratio of
nuclei found to true nuclei, and the DSB difference to the unchanged images it derives from.
Target (issue 12): every rescaled or stained variant within 0.03 DSB of the unchanged images.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage.color import hed2rgb, rgb2hed
from skimage.transform import rescale

from nucleoflow.dataset import Archive, find_samples, load_labels
from nucleoflow.io import load_hwc
from nucleoflow.metrics import image_scores
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path

TARGET = 0.03


def rescaled(image, labels, factor):
    """Image and labels as if the microscope magnified `factor` times more."""
    image_out = rescale(image.astype(np.float32), factor, order=1, channel_axis=-1, anti_aliasing=factor < 1, preserve_range=True)
    labels_out = rescale(labels, factor, order=0, anti_aliasing=False, preserve_range=True).astype(labels.dtype)
    return image_out.round().clip(0, np.iinfo(image.dtype).max).astype(image.dtype), labels_out


def stain_jittered(image, rng):
    """An RGB image with its haematoxylin, eosin and DAB amounts rescaled and shifted (the HED
    jitter of Tellez et al. 2018), as another lab's staining would give."""
    hed = rgb2hed(image[..., :3])
    alpha = rng.uniform(0.6, 1.4, 3)
    beta = rng.uniform(-0.03, 0.03, 3)
    rgb = hed2rgb(hed * alpha + beta)
    return (rgb.clip(0, 1) * 255).round().astype(np.uint8)


def validation(data_dir):
    manifest = pd.read_csv(data_dir / "manifest.csv")
    rows = manifest[manifest["split"] == "val"]
    return [(row.id, row.modality, load_hwc(data_dir / row.image), tifffile.imread(data_dir / row.labels)) for row in rows.itertuples()]


def monuseg(path):
    archive = Archive(path)
    examples = []
    for sample in find_samples(archive):
        image = archive.image(sample.image)
        examples.append((sample.id, "histology", image, load_labels(archive, sample, image.shape[:2])))
    return examples


def variants(val, scales, monuseg_zip, seed=0):
    """(variant name, the unchanged variant it is compared with, examples)."""
    yield "unchanged", "unchanged", val
    for factor in scales:
        yield f"scale x{factor:g}", "unchanged", [(i, m, *rescaled(img, lab, factor)) for i, m, img, lab in val]
    colour = [e for e in val if e[2].shape[-1] == 3]
    if colour:
        rng = np.random.default_rng(seed)
        yield "colour, unchanged", "colour, unchanged", colour
        yield "colour, stain-jittered", "colour, unchanged", [(i, m, stain_jittered(img, rng), lab) for i, m, img, lab in colour]
    if monuseg_zip:
        yield "MoNuSeg test (H&E)", None, monuseg(monuseg_zip)


def score(segmenter, examples):
    rows = [image_scores(truth, segmenter(image)) for _, _, image, truth in examples]
    frame = pd.DataFrame(rows)
    pooled = frame[["tp_0.50", "fp_0.50", "fn_0.50"]].sum()
    return {
        "images": len(frame),
        "DSB": frame["dsb"].mean(),
        "AP@0.5 pooled": pooled["tp_0.50"] / max(1, pooled.sum()),
        "count ratio": frame["n_pred"].sum() / max(1, frame["n_true"].sum()),
    }


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

    val = validation(args.data)
    print(f"validation split: {len(val)} images of {args.data}")
    table = []
    for model in args.models:
        segmenter = Segmenter(model_path(model), tta=args.tta, threads=args.threads)
        reference = {}
        for name, base, examples in variants(val, args.scales, args.monuseg):
            start = time.perf_counter()
            row = {"model": str(model), "variant": name, **score(segmenter, examples)}
            row["seconds"] = time.perf_counter() - start
            if name == base:
                reference[name] = row["DSB"]
            row["DSB - unchanged"] = row["DSB"] - reference[base] if base else float("nan")
            table.append(row)
            print(f"  {model}: {name}: DSB {row['DSB']:.3f} ({row['seconds']:.0f} s)", flush=True)
    frame = pd.DataFrame(table)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for model, rows in frame.groupby("model", sort=False):
        worst = rows.dropna(subset=["DSB - unchanged"]).sort_values("DSB - unchanged").iloc[0]
        verdict = "within" if worst["DSB - unchanged"] >= -TARGET else "NOT within"
        print(f"{model}: worst variant {worst['variant']} {worst['DSB - unchanged']:+.3f} DSB: {verdict} {TARGET} of the unchanged images")
    if args.csv:
        frame.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
