"""Snakemake script: train the U-Net, keep every epoch's weights (best_epoch picks the model)."""

from nucleoflow.logs import setup_logging
from nucleoflow.train import train

setup_logging(snakemake.log[0])
train(
    snakemake.input.data,
    snakemake.output[0],
    snakemake.params.work,
    snakemake.params.model,
    snakemake.params.train,
    threads=snakemake.threads,
    processes=snakemake.resources.gpu,
    log_path=snakemake.log[0],
)
