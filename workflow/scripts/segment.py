"""Snakemake script: one shard ("k-of-n") of a folder of the user's images -> <stem>.<outputs>, summary.csv,
and parts/<stem>/ (its part of each image above segment.split_above_mp).

`threads` is both the network's threads and the processes that label blocks beside it (on a GPU
node the labelling is the slower part; on a CPU-only one both share the cores).
"""

import dataclasses

from nucleoflow.logs import setup_logging
from nucleoflow.options import Tiling
from nucleoflow.segment import segment_folder

if __name__ == "__main__":  # the labelling workers import this script (multiprocessing's spawn)
    setup_logging(snakemake.log[0])
    segment_folder(
        snakemake.params.segment["input_dir"],
        snakemake.output[0],
        snakemake.input.model,
        shard=tuple(int(n) for n in snakemake.wildcards.scatteritem.split("-of-")),
        threads=snakemake.threads,
        workers=snakemake.threads,
        outputs=snakemake.params.segment["outputs"],
        diameter=snakemake.params.segment["diameter"],
        channel=snakemake.params.segment["channel"],
        pixel_size_um=snakemake.params.segment["pixel_size_um"],
        split_above_mp=snakemake.params.segment["split_above_mp"],
        **dataclasses.asdict(Tiling.from_config(snakemake.params.predict, snakemake.params.segment)),
    )
