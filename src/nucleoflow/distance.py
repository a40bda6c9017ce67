"""A second head: nucleus foreground and each nucleus's normalised distance to its edge.

Two sigmoid maps: P(foreground) and, inside a nucleus, the distance of a pixel to the nearest
pixel outside it divided by the largest such distance in that nucleus (1 at its centre,
StarDist's normalised distance). Touching nuclei are apart where the distance falls between them;
nuclei are the regions of distance above seed_threshold grown down the distance over
P(foreground) above foreground_threshold. No shipped model uses it; it shows what a head is.
"""

import numpy as np
from scipy import ndimage as ndi

from .head import Head

# Targets are uint8: 0 background, 1 + round(STEPS * normalised distance) inside a nucleus.
STEPS = 254


def distance_targets(labels):
    """uint8 (H, W): 0 outside nuclei, 1..255 the normalised distance (STEPS steps) inside each."""
    target = np.zeros(labels.shape, np.uint8)
    for index, box in enumerate(ndi.find_objects(labels), 1):
        if box is None:
            continue
        # One pixel around the box: the nucleus's own edge is at distance 1 even at the box's.
        padded = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        mine = labels[padded] == index
        distance = ndi.distance_transform_edt(np.pad(mine, 1))[1:-1, 1:-1]
        target[padded][mine] = 1 + np.round(STEPS * distance[mine] / distance.max()).astype(np.uint8)
    return target


def _bce_with_logits(x, y):
    """Per-element binary cross-entropy of logits x against targets y in [0, 1], in the stable form
    torch's binary_cross_entropy_with_logits computes (written with the tensors' methods: head.py)."""
    return x.clamp(min=0) - x * y + (-x.abs()).exp().log1p()


class Distance(Head):
    name = "distance"
    outputs = ("foreground", "distance")
    description = "sigmoid of nucleus foreground and of each nucleus's distance to its edge, normalised to 1 at its centre"
    target_kinds = ("distance",)
    validation = {"seed_threshold": 0.5, "foreground_threshold": 0.5, "min_seed_area": 4, "min_area": 10}

    def training_problems(self, targets, border_weight):
        problems = super().training_problems(targets, border_weight)
        if border_weight != 1:
            problems.append(f"train.border_weight ({border_weight}) weights a border class the distance head (model.head) has not: set it to 1")
        return problems

    def activation(self, logits):
        return logits.sigmoid()

    def targets(self, labels, kind):
        return distance_targets(labels)

    def loss(self, logits, target, border_weight=1.0):
        """Binary cross-entropy and soft Dice of the foreground, plus binary cross-entropy of the
        distance against its soft target inside nuclei."""
        foreground = (target > 0).float()
        distance = (target.float() - 1).clamp(min=0) / STEPS
        bce = _bce_with_logits(logits[:, 0], foreground).mean()
        inside = (_bce_with_logits(logits[:, 1], distance) * foreground).sum() / foreground.sum().clamp(min=1)
        p = logits[:, 0].sigmoid()
        dice = (2 * (p * foreground).sum() + 1) / (p.sum() + foreground.sum() + 1)
        return bce + inside + (1 - dice)

    def watershed_inputs(self, maps, seed_threshold, foreground_threshold):
        foreground, distance = maps[0] > foreground_threshold, maps[1]
        return distance, (distance > seed_threshold) & foreground, foreground


HEAD = Distance()
