"""Snakemake script: tiled inference on the chosen splits -> probability TIFFs."""

from nucleoflow.infer import predict_manifest
from nucleoflow.logs import setup_logging
from nucleoflow.options import Tiling

setup_logging(snakemake.log[0])
predict_manifest(
    snakemake.input.model,
    snakemake.input.data,
    snakemake.output[0],
    snakemake.params.predict["splits"],
    Tiling.from_config(snakemake.params.predict),
    threads=snakemake.threads,
)
