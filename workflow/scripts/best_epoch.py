"""Snakemake script: score train's epochs on the validation crops; the best is the model."""

from nucleoflow.best_epoch import pick_best
from nucleoflow.logs import setup_logging

setup_logging(snakemake.log[0])
pick_best(
    snakemake.input.epochs,
    snakemake.input.data,
    snakemake.output.model,
    snakemake.output.history,
    threads=snakemake.threads,
)
