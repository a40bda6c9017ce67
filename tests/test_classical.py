"""The classical baseline (Otsu + distance-transform watershed) on synthetic discs."""

import numpy as np
from synthetic import discs

from nucleoflow.classical import classical_instances, tune_classical
from nucleoflow.metrics import image_scores

SEPARATE = ((30, 30), (30, 90), (90, 40), (95, 120))
TOUCHING = ((64, 68), (64, 92))  # radius 12, centres 24 apart: the discs touch


def render(labels, seed=0, dark_nuclei=False):
    """A noisy uint8 (H, W, 1) image of the labels' foreground."""
    rng = np.random.default_rng(seed)
    image = np.where(labels > 0, 180.0, 30.0) + rng.normal(0, 12, labels.shape)
    if dark_nuclei:
        image = 255 - image  # brightfield look: dark nuclei on a bright background
    return np.clip(image, 0, 255).astype(np.uint8)[..., None]


def test_separate_discs_are_found():
    true = discs(centres=SEPARATE)
    pred = classical_instances(render(true))
    assert pred.dtype == np.uint32
    assert pred.max() == 4
    assert image_scores(true, pred)["dsb"] > 0.7


def test_dark_nuclei_on_bright_background_are_found():
    true = discs(centres=SEPARATE)
    assert image_scores(true, classical_instances(render(true, dark_nuclei=True)))["dsb"] > 0.7


def test_touching_equal_discs_are_split():
    true = discs(centres=TOUCHING)
    pred = classical_instances(render(true))
    assert pred.max() == 2
    assert image_scores(true, pred)["dsb"] > 0.7


def test_empty_image_gives_no_objects():
    assert classical_instances(np.zeros((64, 64, 1), np.uint8)).max() == 0
    assert classical_instances(np.full((64, 64, 3), 200, np.uint8)).max() == 0


def test_tune_picks_the_best_grid_point():
    pairs = [(render(true, seed), true) for seed, true in enumerate([discs(centres=SEPARATE), discs(centres=TOUCHING)])]
    # min_distance 40 cannot split the touching pair, so the grid has a clear loser.
    grid = {"min_distance": [40, 5], "smoothing": [1.0], "threshold_scale": [1.0], "min_area": [10]}
    best, table = tune_classical(pairs, grid)
    assert len(table) == 2
    assert table["dsb"].iloc[0] == table["dsb"].max()
    assert best == {"min_distance": 5, "smoothing": 1.0, "threshold_scale": 1.0, "min_area": 10}
    assert table["dsb"].iloc[0] > table["dsb"].iloc[1]
    assert table["dsb"].iloc[0] > 0.7


def test_tune_default_grid_covers_every_point():
    true = discs(shape=(64, 64), centres=((20, 20), (44, 44)), radius=8)
    best, table = tune_classical([(render(true), true)])
    assert len(table) == 18
    assert table["dsb"].is_monotonic_decreasing
    assert set(best) == {"min_distance", "smoothing", "threshold_scale", "min_area"}
    assert table.iloc[0][list(best)].to_dict() == best
