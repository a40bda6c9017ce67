"""Snakemake script: the chosen splits' images -> instance label TIFFs, labelled as `nucleoflow
segment` labels them (the tuned model; `threads` network threads and labelling processes)."""

import dataclasses

from nucleoflow.logs import setup_logging
from nucleoflow.options import Tiling
from nucleoflow.split_labels import label_splits

if __name__ == "__main__":  # the labelling workers import this script (multiprocessing's spawn)
    setup_logging(snakemake.log[0])
    label_splits(
        snakemake.input.model,
        snakemake.input.archive,
        snakemake.input.data,
        snakemake.output[0],
        snakemake.params.splits,
        threads=snakemake.threads,
        workers=snakemake.threads,
        **dataclasses.asdict(Tiling.from_config(snakemake.params.predict, snakemake.params.blocks)),
    )
