"""Record the pinned quality numbers that tests/quality/test_pinned.py checks (as stardist pins its
models' outputs): run this only when a change is meant to alter the shipped model's results,
and say why in the commit.

    python tests/pinned/record.py [--model dsb2018_unet|he_unet]

Writes, from the committed crops (.test/data/dsb2018_crops.zip) and the shipped model:
- dsb_per_image.csv: each crop's DSB score through Segmenter (no TTA, default tiling, the
  thresholds of the model card for the crop's modality); for he_unet, the same from the
  MoNuSeg validation crops (.test/data/monuseg_val_crops.zip) in he_unet/dsb_per_image.csv;
- probs.tif: the network's probabilities (float16) for the crop PROBS_STEM;
- labels.tif: instances() of those probabilities with each threshold set in thresholds.json
  (the model card's for the crop's modality, and SEEDS_BELOW_FOREGROUND), one plane each.
"""

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from nucleoflow.decode import decode_image
from nucleoflow.infer import probabilities
from nucleoflow.metrics import image_scores
from nucleoflow.options import Thresholds
from nucleoflow.postprocess import instances
from nucleoflow.reader import to_hwc
from nucleoflow.region import RegionSource
from nucleoflow.segment import Segmenter

HERE = Path(__file__).resolve().parent
CROPS = HERE.parents[1] / ".test" / "data" / "dsb2018_crops.zip"
MODEL = "dsb2018_unet"
# Each shipped model's committed crops (never trained on) and where its numbers are recorded.
PINNED = {MODEL: (CROPS, HERE), "he_unet": (HERE.parents[1] / ".test" / "data" / "monuseg_val_crops.zip", HERE / "he_unet")}
TILING = {"tta": False}  # 8x faster; the default tiling otherwise
# A histology crop (176 px, 30 nuclei) where, of all crops, the most seed pixels at
# SEEDS_BELOW_FOREGROUND lie outside the foreground (81 px).
PROBS_STEM = "cbff60361ded0570"
# A point of tune's grid with seeds below the foreground threshold: there the watershed mask
# must take in the seeds (the card's thresholds have seeds inside the foreground).
SEEDS_BELOW_FOREGROUND = Thresholds(seed_threshold=0.3, foreground_threshold=0.8)


def read_crops(crops=CROPS):
    """{stem: (image (H, W, C), labels)} of committed crops."""
    with zipfile.ZipFile(crops) as archive:
        stems = sorted(Path(n).stem for n in archive.namelist() if n.startswith("images/"))
        return {s: (to_hwc(decode_image(archive.read(f"images/{s}.png"), s), s), tifffile.imread(archive.open(f"labels/{s}.tif"))) for s in stems}


def record_dsb(model):
    """Each of `model`'s pinned crops' DSB, written to its dsb_per_image.csv; (Segmenter, crops)."""
    crops_zip, out = PINNED[model]
    segmenter = Segmenter(model, threads=2, **TILING)
    crops = read_crops(crops_zip)
    rows = []
    for stem, (image, truth) in crops.items():
        scores = image_scores(truth, segmenter(image, stem))
        rows.append({"stem": stem, "n_true": scores["n_true"], "n_pred": scores["n_pred"], "dsb": scores["dsb"]})
    out.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "dsb_per_image.csv", index=False, float_format="%.6f")
    print(f"{model}: {len(rows)} crops, mean DSB {np.mean([r['dsb'] for r in rows]):.4f}")
    return segmenter, crops


def main():
    parser = argparse.ArgumentParser(description="record the pinned quality numbers")
    parser.add_argument("--model", choices=list(PINNED), default=MODEL)
    model = parser.parse_args().model
    segmenter, crops = record_dsb(model)
    if model != MODEL:
        return
    image = crops[PROBS_STEM][0]
    probs = probabilities(segmenter.engine, image, segmenter.tiling).astype(np.float16)
    tifffile.imwrite(HERE / "probs.tif", probs, compression="zlib")
    thresholds = [segmenter.thresholds_for(RegionSource(image, PROBS_STEM)), SEEDS_BELOW_FOREGROUND]
    (HERE / "thresholds.json").write_text(json.dumps([t.values() for t in thresholds], indent=2) + "\n")
    labels = np.stack([instances(probs.astype(np.float32), t) for t in thresholds]).astype(np.uint16)
    tifffile.imwrite(HERE / "labels.tif", labels, compression="zlib")
    print(f"{PROBS_STEM}: {[int(p.max()) for p in labels]} nuclei")


if __name__ == "__main__":
    main()
