import numpy as np
import pandas as pd
import pytest
from synthetic import discs

from nucleoflow.metrics import summarize
from nucleoflow.scores import THRESHOLDS, image_scores, iou_matrix


def test_thresholds_are_exact():
    assert THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_perfect_prediction_scores_one():
    labels = discs()
    row = image_scores(labels, labels)
    assert row["dsb"] == 1.0 and row["n_true"] == 4 and row["n_pred"] == 4


def test_label_ids_need_not_match_or_be_consecutive():
    labels = discs()
    shuffled = np.zeros_like(labels)
    for old, new in zip(range(1, 5), (9, 3, 70, 5)):
        shuffled[labels == old] = new
    assert image_scores(labels, shuffled)["dsb"] == 1.0


def test_missed_and_spurious_objects():
    labels = discs()
    pred = labels.copy()
    pred[pred == 4] = 0  # one false negative
    pred[0:5, 150:155] = 9  # one false positive
    row = image_scores(labels, pred)
    # TP=3, FP=1, FN=1 at every threshold
    assert row["dsb"] == pytest.approx(3 / 5)
    assert row["f1_0.50"] == pytest.approx(6 / 8)


def test_iou_exactly_at_threshold_is_not_a_match():
    true = np.zeros((10, 10), np.uint32)
    true[:, :4] = 1  # 40 px
    pred = np.zeros_like(true)
    pred[:, 2:4] = 1  # 20 px inside: IoU = 0.5 exactly
    assert iou_matrix(true, pred)[0, 0] == 0.5
    row = image_scores(true, pred)
    assert row["tp_0.50"] == 0 and row["dsb"] == 0.0


def test_partial_overlap_counts_per_threshold():
    true = np.zeros((10, 20), np.uint32)
    true[:, :10] = 1  # 100 px
    pred = np.zeros_like(true)
    pred[:, 2:10] = 1  # IoU 0.8
    row = image_scores(true, pred)
    # matched for t in 0.50..0.75 (6 thresholds), not for 0.80..0.95
    assert [row[f"tp_{t:.2f}"] for t in THRESHOLDS] == [1] * 6 + [0] * 4
    assert row["dsb"] == pytest.approx(0.6)


def test_summary_per_split_and_modality():
    labels = discs()
    good, bad = image_scores(labels, labels), image_scores(labels, np.zeros_like(labels))
    frame = pd.DataFrame(
        [
            {"id": "a", "split": "test", "modality": "fluorescence", **good},
            {"id": "b", "split": "test", "modality": "histology", **bad},
        ]
    )
    summary = summarize(frame).set_index(["split", "modality"])
    assert summary.loc[("test", "all"), "dsb"] == 0.5
    assert summary.loc[("test", "fluorescence"), "dsb"] == 1.0
    assert summary.loc[("test", "histology"), "dsb"] == 0.0
    assert summary.loc[("test", "all"), "ap_pooled_0.50"] == pytest.approx(4 / 8)
