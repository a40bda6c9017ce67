"""Snakemake script: figures for `snakemake --report`."""

import pandas as pd

from nucleoflow.io import setup_logging
from nucleoflow.report import plot_distribution, plot_overlays, plot_score_vs_iou

setup_logging(snakemake.log[0])
per_image = pd.read_csv(snakemake.input.per_image)
plot_score_vs_iou(pd.read_csv(snakemake.input.summary), snakemake.output.score_vs_iou)
plot_distribution(per_image, snakemake.output.distribution)
test = per_image[per_image["split"] == "test"]
plot_overlays(test if len(test) else per_image, snakemake.input.data, snakemake.input.labels, snakemake.output.overlays)
