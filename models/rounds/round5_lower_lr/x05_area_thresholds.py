"""The x0.5 validation variant labelled with the card's area thresholds, and with them cut to a
half and a quarter (round 5's README).

    python models/rounds/round5_lower_lr/x05_area_thresholds.py TUNED_MODEL.pt

run from the repository root (results/data: the preprocess rule's folder).
"""

import dataclasses
import sys

import pandas as pd

from nucleoflow.robustness import rescaled, score, split_examples
from nucleoflow.segment import Segmenter


def scaled_areas(thresholds_for, factor):
    """thresholds_for with its min_seed_area and min_area times factor (at least 1 px)."""

    def scaled(source):
        t = thresholds_for(source)
        return dataclasses.replace(t, min_seed_area=max(1, round(t.min_seed_area * factor)), min_area=max(1, round(t.min_area * factor)))

    return scaled


def main():
    half = [(i, m, *rescaled(image, labels, 0.5)) for i, m, image, labels in split_examples("results/data")]
    segmenter = Segmenter(sys.argv[1], tta=False, threads=2)
    card = segmenter.thresholds_for
    rows = []
    for name, factor in (("card", 1.0), ("areas / 2", 0.5), ("areas / 4", 0.25)):
        segmenter.thresholds_for = scaled_areas(card, factor)
        rows.append({"x0.5 thresholds": name, **score((truth, segmenter(image)) for _, _, image, truth in half)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
