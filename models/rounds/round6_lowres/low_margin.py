"""Validation DSB of the unchanged and x0.5 images when Segmenter zooms up every image whose
nuclei lie under p5 / LOW (scale.MARGIN is 1.4 on both sides today), for each tuned model given:

    python models/rounds/round6_lowres/low_margin.py TUNED_MODEL.pt [...]

run from the repository root (results/data: the preprocess rule's folder).
"""

import sys

import pandas as pd

from nucleoflow import scale, sizing
from nucleoflow.robustness import rescaled, score, split_examples
from nucleoflow.segment import Segmenter

LOWS = (1.4, 1.0, 0.8)  # 0.8: zoom up to p5 / 0.8, i.e. nuclei a quarter above the 5th percentile


def with_low_margin(low):
    """scale.rescale_factor with `low` in place of MARGIN on the low side only."""

    def rescale_factor(diameter, sizes, given=False):
        if not given and diameter and sizes and sizes[scale.KNOWN[0]] / low <= diameter <= sizes[scale.KNOWN[1]] * scale.MARGIN:
            return 1.0
        return scale.rescale_factor(diameter, sizes, given=True)

    return rescale_factor


def main():
    examples = split_examples("results/data")
    half = [(i, m, *rescaled(image, labels, 0.5)) for i, m, image, labels in examples]
    rows = []
    for model in sys.argv[1:]:
        segmenter = Segmenter(model, tta=False, threads=2)
        for low in LOWS:
            sizing.rescale_factor = with_low_margin(low)
            row = {"model": model, "low margin": low}
            for name, subset in (("unchanged", examples), ("x0.5", half)):
                row[name] = score((truth, segmenter(image)) for _, _, image, truth in subset)["DSB"]
            row["x0.5 - unchanged"] = row["x0.5"] - row["unchanged"]
            rows.append(row)
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)


if __name__ == "__main__":
    main()
