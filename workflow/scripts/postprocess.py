"""Snakemake script: probability TIFFs -> instance label TIFFs."""

from pathlib import Path

import pandas as pd

from nucleoflow.io import setup_logging
from nucleoflow.options import ThresholdSet
from nucleoflow.postprocess import label_folder

setup_logging(snakemake.log[0])
thresholds = ThresholdSet.for_workflow(snakemake.params.thresholds, snakemake.input.thresholds)
manifest = pd.read_csv(Path(snakemake.input.data) / "manifest.csv")
label_folder(snakemake.input.probs, snakemake.output[0], thresholds, dict(zip(manifest["id"], manifest["modality"])))
