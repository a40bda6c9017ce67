"""Snakemake script: fetch data.url into the download folder, checking its checksum."""

from nucleoflow.download import fetch
from nucleoflow.logs import setup_logging

setup_logging(snakemake.log[0])
fetch(snakemake.params.url, snakemake.output[0], snakemake.params.sha256 or None)
