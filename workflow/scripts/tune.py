"""Snakemake script: postprocess thresholds tuned on the validation split's probability maps."""

from nucleoflow.logs import setup_logging
from nucleoflow.tune import tune_folder

setup_logging(snakemake.log[0])
tune_folder(snakemake.input.probs, snakemake.input.data, "val", snakemake.output.thresholds, snakemake.output.grid, snakemake.params.head)
