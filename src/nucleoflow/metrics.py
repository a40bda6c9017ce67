"""The DSB2018 score and AP/F1 at IoU thresholds (Caicedo et al. 2019)."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from .atomic import atomic_path

log = logging.getLogger(__name__)

# Rounded: np.arange(0.5, 1.0, 0.05) gives 0.9000000000000001 and shifts a boundary.
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def iou_matrix(true, pred):
    """IoU between every true (rows) and predicted (columns) object, labels 1..N."""
    n_true, n_pred = int(true.max()), int(pred.max())
    pairs = true.astype(np.int64).ravel() * (n_pred + 1) + pred.astype(np.int64).ravel()
    overlap = np.bincount(pairs, minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    area_true = overlap.sum(axis=1, keepdims=True)
    area_pred = overlap.sum(axis=0, keepdims=True)
    union = area_true + area_pred - overlap
    iou = overlap / np.maximum(union, 1)
    # Drop background and absent (non-consecutive) label ids.
    keep_true = area_true[1:, 0] > 0
    keep_pred = area_pred[0, 1:] > 0
    return iou[1:, 1:][keep_true][:, keep_pred]


def match_counts(true, pred, thresholds=THRESHOLDS):
    """(TP, FP, FN) per threshold; a match needs IoU > t, which is one-to-one for t >= 0.5."""
    iou = iou_matrix(true, pred)
    n_true, n_pred = iou.shape
    counts = []
    for t in thresholds:
        tp = int((iou > t).sum())
        counts.append((tp, n_pred - tp, n_true - tp))
    return counts


def image_scores(true, pred, thresholds=THRESHOLDS):
    """Per-image dict: counts, AP (= TP/(TP+FP+FN)) and F1 at each threshold, and the DSB score."""
    counts = match_counts(true, pred, thresholds)
    row = {"n_true": counts[0][0] + counts[0][2], "n_pred": counts[0][0] + counts[0][1]}
    aps = []
    for t, (tp, fp, fn) in zip(thresholds, counts):
        ap = tp / (tp + fp + fn) if tp + fp + fn else 1.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        row.update({f"tp_{t:.2f}": tp, f"fp_{t:.2f}": fp, f"fn_{t:.2f}": fn, f"ap_{t:.2f}": ap, f"f1_{t:.2f}": f1})
        aps.append(ap)
    row["dsb"] = float(np.mean(aps))
    return row


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
