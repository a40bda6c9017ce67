"""Snakemake script: tiled inference on the chosen splits -> probability TIFFs."""

from nucleoflow.infer import predict_manifest
from nucleoflow.io import setup_logging

setup_logging(snakemake.log[0])
predict_manifest(
    snakemake.input.model,
    snakemake.input.data,
    snakemake.output[0],
    snakemake.params.splits,
    tile=snakemake.params.tile_size,
    overlap=snakemake.params.overlap,
    batch_size=snakemake.params.batch_size,
    tta=snakemake.params.tta,
    engine=snakemake.params.engine,
    threads=snakemake.threads,
)
