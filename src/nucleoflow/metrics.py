"""The evaluate rule's tables: per-image scores (scores.py: the DSB2018 score and AP/F1 at IoU
thresholds, Caicedo et al. 2019) and their summary per split and modality."""

import logging
from pathlib import Path

import pandas as pd
import tifffile

from .atomic import atomic_path
from .scores import THRESHOLDS, image_scores

log = logging.getLogger(__name__)


def summarize(per_image, thresholds=THRESHOLDS):
    """Mean per-image scores, plus StarDist-style AP pooled over images, per split and modality."""
    rows = []
    for split, by_split in per_image.groupby("split"):
        for modality, frame in [("all", by_split)] + list(by_split.groupby("modality")):
            row = {"split": split, "modality": modality, "n_images": len(frame), "dsb": frame["dsb"].mean()}
            for t in thresholds:
                tp, fp, fn = (frame[f"{k}_{t:.2f}"].sum() for k in ("tp", "fp", "fn"))
                row[f"ap_{t:.2f}"] = frame[f"ap_{t:.2f}"].mean()
                row[f"f1_{t:.2f}"] = frame[f"f1_{t:.2f}"].mean()
                row[f"ap_pooled_{t:.2f}"] = tp / max(tp + fp + fn, 1)
            rows.append(row)
    return pd.DataFrame(rows)


def evaluate_folder(data_dir, labels_dir, per_image_path, summary_path):
    """Score every predicted label image against its ground truth; write both CSVs."""
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv").set_index("id")
    rows = []
    for path in sorted(Path(labels_dir).glob("*.tif")):
        info = manifest.loc[path.stem]
        truth = tifffile.imread(Path(data_dir) / info["labels"])
        scores = image_scores(truth, tifffile.imread(path))
        rows.append({"id": path.stem, "split": info["split"], "modality": info["modality"], **scores})
    per_image = pd.DataFrame(rows)
    summary = summarize(per_image)
    with atomic_path(per_image_path) as tmp:
        per_image.to_csv(tmp, index=False)
    with atomic_path(summary_path) as tmp:
        summary.to_csv(tmp, index=False)
    for row in summary.itertuples():
        log.info("%s %-12s n=%3d DSB %.4f", row.split, row.modality, row.n_images, row.dsb)
    return per_image, summary
