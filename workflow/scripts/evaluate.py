"""Snakemake script: per-image and summary metrics against the ground truth."""

from nucleoflow.logs import setup_logging
from nucleoflow.metrics import evaluate_folder

setup_logging(snakemake.log[0])
evaluate_folder(snakemake.input.data, snakemake.input.labels, snakemake.output.per_image, snakemake.output.summary)
