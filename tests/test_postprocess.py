
import numpy as np
from scipy import ndimage as ndi
from synthetic import discs, probabilities_from

from nucleoflow.metrics import image_scores
from nucleoflow.options import Thresholds
from nucleoflow.postprocess import instances
from nucleoflow.targets import BORDER, INTERIOR, instance_targets


def test_targets_separate_touching_nuclei():
    labels = discs()
    target = instance_targets(labels)
    assert set(np.unique(target)) == {0, INTERIOR, BORDER}
    # Interiors alone split the two touching discs into separate components.
    assert ndi.label(target == INTERIOR)[1] == 4
    # Plain foreground would merge them.
    assert ndi.label(labels > 0)[1] == 3


def test_perfect_probabilities_recover_every_nucleus():
    labels = discs()
    pred = instances(probabilities_from(labels))
    assert pred.dtype == np.uint32 and pred.max() == 4
    assert image_scores(labels, pred)["dsb"] == 1.0


def test_noisy_probabilities_still_recover_nuclei():
    labels = discs()
    rng = np.random.default_rng(0)
    probs = probabilities_from(labels) + rng.uniform(0, 0.3, (3, *labels.shape)).astype(np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    assert image_scores(labels, instances(probs))["dsb"] > 0.9


def test_thresholds_and_small_objects():
    labels = discs()
    probs = probabilities_from(labels)
    probs[:, 0:3, 0:3] = np.array([0, 1, 0], np.float32)[:, None, None]  # a 9-pixel speck
    assert instances(probs, Thresholds(min_area=10)).max() == 4
    assert instances(probs, Thresholds(min_area=5, min_seed_area=1)).max() == 5
    # A seed threshold above every interior probability finds nothing.
    assert instances(probs * 0.4, Thresholds(seed_threshold=0.5)).max() == 0
