"""Snakemake script: train the U-Net, keep the best model (the curves rule plots its history)."""

from nucleoflow.logs import setup_logging
from nucleoflow.train import train

setup_logging(snakemake.log[0])
train(
    snakemake.input.data,
    snakemake.output.model,
    snakemake.output.history,
    snakemake.params.checkpoint,
    snakemake.params.model,
    snakemake.params.train,
    threads=snakemake.threads,
    processes=snakemake.resources.gpu,
    log_path=snakemake.log[0],
)
