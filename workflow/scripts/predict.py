"""Snakemake script: tiled inference on the validation split -> probability TIFFs (tune's input)."""

from nucleoflow.infer import predict_manifest
from nucleoflow.logs import setup_logging
from nucleoflow.options import Tiling

setup_logging(snakemake.log[0])
predict_manifest(
    snakemake.input.model,
    snakemake.input.data,
    snakemake.output[0],
    ["val"],
    Tiling.from_config(snakemake.params.predict),
    threads=snakemake.threads,
)
