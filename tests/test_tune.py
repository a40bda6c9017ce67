"""Postprocess threshold search: every grid point is tried and the best one is returned."""

import numpy as np
from synthetic import discs, probabilities_from

from nucleoflow.head import SIZE_GRID, THRESHOLD_GRID
from nucleoflow.options import Thresholds, ThresholdSet
from nucleoflow.tune import tune_by_modality, tune_thresholds

TRUTH = discs(radius=6, centres=[(y, x) for y in range(12, 120, 16) for x in range(12, 150, 16)])


def soft(truth, interior=0.55):
    """A soft network: interior confidence capped. Thresholds above the cap find no seeds."""
    probs = probabilities_from(truth)
    probs[1] *= interior
    probs[0] = 1 - probs[1] - probs[2]
    return probs


def test_search_finds_thresholds_that_recover_blurred_nuclei():
    truth = TRUTH
    probs = soft(truth)
    pairs = [(probs, truth)]
    params, table = tune_thresholds(pairs)
    n_points = np.prod([len(v) for v in THRESHOLD_GRID.values()]) + np.prod([len(v) for v in SIZE_GRID.values()])
    assert len(table) == n_points - 1  # the size grid holds the first stage's best point again
    assert table["dsb"].iloc[0] == table["dsb"].max() > 0.9
    assert params["seed_threshold"] < 0.55  # seeds must exist
    assert table[table["seed_threshold"] > 0.55]["dsb"].max() == 0.0


def test_modalities_with_enough_images_get_their_own_thresholds():
    """The soft modality needs seed thresholds below its 0.55 cap; the crisp one, the majority,
    sets the global values; one with too few images keeps the global ones."""
    pairs = [(probabilities_from(TRUTH), TRUTH)] * 3 + [(soft(TRUTH), TRUTH)] * 2 + [(soft(TRUTH, 0.35), TRUTH)]
    modalities = ["crisp"] * 3 + ["soft"] * 2 + ["rare"]
    params, table = tune_by_modality(pairs, modalities, min_images=2)
    assert set(params["modality"]) == {"crisp", "soft"}
    assert params["modality"]["soft"]["seed_threshold"] < 0.55
    assert set(table["modality"]) == {"all", "crisp", "soft"}
    soft_rows = table[table["modality"] == "soft"]
    assert soft_rows["dsb"].iloc[0] == soft_rows["dsb"].max() > 0.9
    chosen = ThresholdSet.from_json(params)
    assert chosen.for_modality("soft") == Thresholds(**params["modality"]["soft"])
    assert chosen.for_modality("rare") == chosen.for_modality(None) == Thresholds(**{k: v for k, v in params.items() if k != "modality"})
    assert chosen.to_json() == params
    # Too few images of every modality: the global values alone, as before.
    alone, _ = tune_by_modality(pairs, modalities, min_images=4)
    assert "modality" not in alone and alone == tune_thresholds(pairs)[0]
