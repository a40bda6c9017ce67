"""Snakemake script: the packaged model on the validation images rescaled and stain-jittered."""

import dataclasses

from nucleoflow.atomic import atomic_path
from nucleoflow.logs import setup_logging
from nucleoflow.options import Tiling
from nucleoflow.robustness import robustness_table, split_examples
from nucleoflow.segment import Segmenter

setup_logging(snakemake.log[0])
# Without TTA: 8x faster, and it shifts every variant alike.
tiling = dataclasses.replace(Tiling.from_config(snakemake.params.predict), tta=False)
segmenter = Segmenter(snakemake.input.model, threads=snakemake.threads, **dataclasses.asdict(tiling))
table = robustness_table(segmenter, split_examples(snakemake.input.data, "val"))
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4f")
