"""The DSB2018 score and AP/F1 at IoU thresholds (Caicedo et al. 2019) of one image's nuclei.

Apart from metrics.py (the evaluate rule's tables), so that training, whose validation score
is this one (validation.py), does not depend on how the tables are written.
"""

import numpy as np

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
