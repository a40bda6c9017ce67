"""Snakemake script: the segment shards' outputs -> results/segment/ (split images' parts joined, one summary.csv)."""

from nucleoflow.logs import setup_logging
from nucleoflow.segment import gather_shards

setup_logging(snakemake.log[0])
gather_shards(snakemake.input.shards, snakemake.output[0])
