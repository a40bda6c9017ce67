"""Segmentation quality on the held-out test split: the shipped U-Net against the classical baseline.

    python benchmarks/quality.py --data results/data [--model dsb2018_unet|path/to/model.pt]

--data is a folder written by the preprocess rule (`snakemake results/data` builds it from the
archive in a minute; its split must be the model's, as recorded in the model card). The U-Net
runs through nucleoflow.segment.Segmenter, the code of the segment rule, with the thresholds
of its card (tuned on validation). The baseline (Otsu + distance watershed) is tuned on the
validation split here. Prints per modality: DSB score (mean over images of the mean AP over IoU
0.50..0.95), AP at IoU 0.5 pooled over images (StarDist's definition) and per-image mean, and
the issue's targets.
"""

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import tifffile

ROOT = Path(__file__).resolve().parents[1]

from nucleoflow.classical import classical_instances, tune_classical  # noqa: E402
from nucleoflow.metrics import image_scores, summarize  # noqa: E402
from nucleoflow.options import Tiling  # noqa: E402
from nucleoflow.prepared import read_prepared  # noqa: E402
from nucleoflow.segment import Segmenter  # noqa: E402
from nucleoflow.shipped import model_path  # noqa: E402

TARGETS = "targets: DSB all >= 0.60; fluorescence AP@0.5 pooled >= 0.86; DSB of each modality >= 0.40"


def load(data_dir, manifest, split):
    rows = manifest[manifest["split"] == split]
    return [(row, read_prepared(data_dir / row.image), tifffile.imread(data_dir / row.labels)) for row in rows.itertuples()]


def scores(method, examples, segment):
    rows = []
    for row, image, truth in examples:
        rows.append({"method": method, "split": "test", "id": row.id, "modality": row.modality, **image_scores(truth, segment(image))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder written by the preprocess rule")
    parser.add_argument("--model", type=model_path, default="dsb2018_unet", help="a shipped model's name or a model.pt path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-image", type=Path, help="also write the per-image scores to this CSV")
    args = parser.parse_args()

    manifest = pd.read_csv(args.data / "manifest.csv")
    card = json.loads(args.model.with_suffix(".json").read_text())
    if card["data"]["manifest_sha256"] != hashlib.sha256((args.data / "manifest.csv").read_bytes()).hexdigest():
        raise SystemExit(
            f"{args.data}/manifest.csv is not the one the model was trained and tested with: build it with the data and split of the model card ({card['data']})"
        )
    test = load(args.data, manifest, "test")
    print(f"test split: {len(test)} images ({', '.join(f'{k} {v}' for k, v in manifest[manifest.split == 'test'].modality.value_counts().items())})")

    start = time.perf_counter()
    predict = card["predict"]  # the tiling and TTA the card's metrics were measured with
    segmenter = Segmenter(args.model, threads=args.threads, **dataclasses.asdict(Tiling.from_config(predict)))
    rows = scores("U-Net (shipped)", test, segmenter)
    unet_s = time.perf_counter() - start

    start = time.perf_counter()
    val = [(image, truth) for _, image, truth in load(args.data, manifest, "val")]
    params, _ = tune_classical(val)
    rows += scores("classical (Otsu + watershed)", test, lambda image: classical_instances(image, **params))
    classical_s = time.perf_counter() - start
    print(
        f"U-Net: {unet_s:.0f} s with {segmenter.options}, thresholds {segmenter.thresholds}; classical: {classical_s:.0f} s incl. tuning on {len(val)} val images -> {params}"
    )

    per_image = pd.DataFrame(rows)
    if args.per_image:
        per_image.to_csv(args.per_image, index=False)
    table = []
    for method, frame in per_image.groupby("method", sort=False):
        summary = summarize(frame.drop(columns="method")).set_index("modality")
        for modality, row in summary.iterrows():
            table.append(
                {
                    "method": method,
                    "modality": modality,
                    "images": int(row["n_images"]),
                    "DSB": row["dsb"],
                    "AP@0.5 pooled": row["ap_pooled_0.50"],
                    "AP@0.5 mean": row["ap_0.50"],
                }
            )
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(TARGETS)


if __name__ == "__main__":
    main()
