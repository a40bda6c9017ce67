"""Per-image validation DSB of the unchanged images and the x1.5 and x2 variants, labelled as
Segmenter labels them today and zoomed to the training median from the diameter its first pass
found, to choose the high side of the sizes a model knows (scale.MARGIN):

    python models/rounds/high_margin/high_margin.py TUNED_MODEL.pt OUT.csv

run from the repository root (results/data: the preprocess rule's folder). Prints, for each high
bound, the mean DSB of each variant were every image whose diameter lies above it zoomed.
"""

import sys

import pandas as pd

from nucleoflow.robustness import rescaled, split_examples
from nucleoflow.scale import KNOWN, MARGIN, median_diameter
from nucleoflow.scores import image_scores
from nucleoflow.segment import Segmenter

FACTORS = (1.0, 1.5, 2.0)


def per_image(model, examples):
    """One row per (factor, image): the diameter today's first pass finds, the DSB as labelled
    today and, where that diameter lies above the training median, the DSB zoomed to it."""
    today = Segmenter(model, tta=False, threads=2)
    rows = []
    for factor in FACTORS:
        for name, modality, image, truth in examples:
            if factor != 1:
                image, truth = rescaled(image, truth, factor)
            labels = today(image)
            diameter = median_diameter(labels)
            row = {"factor": factor, "id": name, "modality": modality, "diameter": diameter, "dsb today": image_scores(truth, labels)["dsb"]}
            if diameter and diameter > today.sizes["median"]:
                zoomed = Segmenter(model, tta=False, threads=2, diameter=diameter)(image)
                row["dsb zoomed"] = image_scores(truth, zoomed)["dsb"]
            rows.append(row)
            print(row, flush=True)
    return pd.DataFrame(rows), today.sizes


def by_bound(frame, sizes):
    """Mean DSB per factor for each high bound (px): images above it zoomed, the others as today."""
    bounds = {f"median x{m:g}": sizes["median"] * m for m in (1.25, 1.5, 1.75, 2.0)}
    bounds |= {"p90": sizes["p90"], "p95": sizes[KNOWN[1]], f"p95 x{MARGIN:g} (today)": sizes[KNOWN[1]] * MARGIN}
    rows = []
    for name, bound in bounds.items():
        chosen = frame["dsb zoomed"].where(frame["diameter"] > bound, frame["dsb today"])
        means = chosen.groupby(frame["factor"]).mean()
        row = {"high bound": name, "px": round(bound, 1), **{f"x{f:g}": means[f] for f in FACTORS}}
        row["zoomed unchanged images"] = int(((frame["factor"] == 1) & (frame["diameter"] > bound)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def main():
    model, out = sys.argv[1], sys.argv[2]
    frame, sizes = per_image(model, split_examples("results/data"))
    frame.to_csv(out, index=False)
    print(by_bound(frame, sizes).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
