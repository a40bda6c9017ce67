"""Snakemake script: one shard ("k-of-n") of a folder of the user's images -> <stem>.<outputs>, summary.csv."""

import dataclasses

from nucleoflow.io import setup_logging
from nucleoflow.options import Tiling
from nucleoflow.segment import segment_folder

setup_logging(snakemake.log[0])
segment_folder(
    snakemake.params.segment["input_dir"],
    snakemake.output[0],
    snakemake.input.model,
    shard=tuple(int(n) for n in snakemake.wildcards.scatteritem.split("-of-")),
    threads=snakemake.threads,
    outputs=snakemake.params.segment["outputs"],
    diameter=snakemake.params.segment["diameter"],
    channel=snakemake.params.segment["channel"],
    pixel_size_um=snakemake.params.segment["pixel_size_um"],
    **dataclasses.asdict(Tiling.from_config(snakemake.params.predict, snakemake.params.segment)),
)
