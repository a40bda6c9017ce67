"""Postprocess threshold search: every grid point is tried and the best one is returned."""

import numpy as np
from nucleoflow.tune import SIZE_GRID, THRESHOLD_GRID, tune_thresholds
from synthetic import discs, probabilities_from


def test_search_finds_thresholds_that_recover_blurred_nuclei():
    truth = discs(radius=6, centres=[(y, x) for y in range(12, 120, 16) for x in range(12, 150, 16)])
    probs = probabilities_from(truth)
    # A soft network: interior confidence falls off, small noise everywhere. Low seed
    # thresholds merge nothing here, but thresholds above the interior's 0.55 find no seeds.
    probs[1] *= 0.55
    probs[0] = 1 - probs[1] - probs[2]
    pairs = [(probs, truth)]
    params, table = tune_thresholds(pairs)
    n_points = np.prod([len(v) for v in THRESHOLD_GRID.values()]) + np.prod([len(v) for v in SIZE_GRID.values()])
    assert len(table) == n_points - 1  # the size grid holds the first stage's best point again
    assert table["dsb"].iloc[0] == table["dsb"].max() > 0.9
    assert params["seed_threshold"] < 0.55  # seeds must exist
    assert table[table["seed_threshold"] > 0.55]["dsb"].max() == 0.0
