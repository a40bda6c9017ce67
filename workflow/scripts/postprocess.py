"""Snakemake script: probability TIFFs -> instance label TIFFs."""

from nucleoflow.io import setup_logging
from nucleoflow.postprocess import label_folder

setup_logging(snakemake.log[0])
label_folder(snakemake.input.probs, snakemake.output[0], **snakemake.params.thresholds)
