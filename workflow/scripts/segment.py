"""Snakemake script: one shard ("k-of-n") of a folder of the user's images -> <stem>.tif labels."""

from nucleoflow.io import setup_logging
from nucleoflow.segment import segment_folder

setup_logging(snakemake.log[0])
segment_folder(
    snakemake.input.images,
    snakemake.output[0],
    snakemake.input.model,
    tile=snakemake.params.tile_size,
    overlap=snakemake.params.overlap,
    batch_size=snakemake.params.batch_size,
    tta=snakemake.params.tta,
    engine=snakemake.params.engine,
    block=snakemake.params.block_size,
    context=snakemake.params.context,
    threads=snakemake.threads,
    shard=tuple(int(n) for n in snakemake.wildcards.scatteritem.split("-of-")),
)
