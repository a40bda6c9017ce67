"""The validation score that picks training's best epoch: the DSB2018 score (scores.py) of the
nuclei the head's seeded watershed finds in the network's maps, at the head's fixed thresholds.

Those thresholds are training's own (Head.validation), not options.Thresholds: the saved model
depends on the score that picked its epoch, so the score is part of how a training run is
defined, like its loss and schedule, and must not change when the inference side does. An edit
of postprocess.py or options.py reruns labelling and what follows, never training; an edit here
or of a head reruns training, which may then keep another epoch.
"""

from .scores import image_scores
from .watershed import instances


def validation_dsb(labels, maps, head):
    """The DSB score of one validation crop: its true labels against the nuclei in `maps`."""
    return image_scores(labels, instances(head, maps, **head.validation))["dsb"]
