"""The validation score that picks training's best epoch: the DSB2018 score (scores.py) of the
nuclei a seeded watershed finds in the network's probabilities, at fixed thresholds.

Its thresholds are training's own (the postprocess defaults when it began), not
options.Thresholds: the saved model depends on the score that picked its epoch, so the score is
part of how a training run is defined, like its loss and schedule, and must not change when the
inference side does. The watershed itself is watershed.py, shared with postprocess.instances:
an edit of postprocess.py or options.py reruns postprocess and what follows, never training; an
edit here or of the watershed algorithm reruns training, which may then keep another epoch.
"""

from .scores import image_scores
from .watershed import seeded_watershed

# Seeds: P(interior) above SEED_THRESHOLD, at least MIN_SEED_AREA pixels; grown over
# P(interior) + P(border) above FOREGROUND_THRESHOLD; nuclei under MIN_AREA pixels dropped.
SEED_THRESHOLD = 0.5
FOREGROUND_THRESHOLD = 0.5
MIN_SEED_AREA = 4
MIN_AREA = 10


def validation_dsb(labels, probs):
    """The DSB score of one validation crop: its true labels against the nuclei in `probs`."""
    return image_scores(labels, seeded_watershed(probs, SEED_THRESHOLD, FOREGROUND_THRESHOLD, MIN_SEED_AREA, MIN_AREA))["dsb"]
