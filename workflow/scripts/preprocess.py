"""Snakemake script: archive or folder -> image and label TIFFs plus manifest.csv."""

from nucleoflow.dataset import build_dataset
from nucleoflow.logs import setup_logging

setup_logging(snakemake.log[0])
split = snakemake.params.split
build_dataset(
    snakemake.input.source,
    snakemake.output[0],
    max_images=snakemake.params.max_images,
    seed=split["seed"],
    val_fraction=split["val_fraction"],
    test_fraction=split["test_fraction"],
)
