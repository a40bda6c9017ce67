"""The shipped models' head: softmax over background, nucleus interior and nucleus border.

Targets (targets.py) mark each nucleus's interior and the border that separates it from its
neighbours; nuclei are the interiors above seed_threshold grown over P(interior) + P(border)
above foreground_threshold.
"""

from .head import Head
from .targets import BORDER, INTERIOR, KINDS, N_CLASSES, make_targets


class InteriorBorder(Head):
    name = "interior_border"
    outputs = ("background", "interior", "border")  # targets.py's class order
    description = "softmax probabilities of background, nucleus interior, nucleus border"
    target_kinds = KINDS
    validation = {"seed_threshold": 0.5, "foreground_threshold": 0.5, "min_seed_area": 4, "min_area": 10}

    def activation(self, logits):
        return logits.softmax(dim=1)

    def targets(self, labels, kind):
        return make_targets(labels, kind)

    def loss(self, logits, target, border_weight=1.0):
        """Cross-entropy (its border class weighted by border_weight, as the U-Net paper and the
        DSB2018 winners weight the pixels between nuclei: torch's weighted mean) plus soft Dice
        over interior and border. Written with the tensors' methods (head.py: no torch import)."""
        onehot = logits.new_zeros(logits.shape).scatter_(1, target.unsqueeze(1), 1.0)
        weighted = onehot * logits.new_tensor([1.0, 1.0, border_weight]).view(1, N_CLASSES, 1, 1)
        ce = -(logits.log_softmax(dim=1) * weighted).sum() / weighted.sum()
        probs = logits.softmax(dim=1)
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        dice = (2 * inter + 1) / (probs.sum(dims) + onehot.sum(dims) + 1)
        return ce + (1 - dice[1:]).mean()

    def watershed_inputs(self, maps, seed_threshold, foreground_threshold):
        """Seeds: P(interior) above seed_threshold, grown down P(interior) over P(interior) +
        P(border) above foreground_threshold."""
        interior = maps[INTERIOR]
        return interior, interior > seed_threshold, (interior + maps[BORDER]) > foreground_threshold


HEAD = InteriorBorder()
