"""Snakemake script: probability TIFFs -> instance label TIFFs, labelled by `threads` processes."""

from pathlib import Path

import pandas as pd

from nucleoflow.logs import setup_logging
from nucleoflow.options import ThresholdSet
from nucleoflow.postprocess import label_folder

if __name__ == "__main__":  # the labelling workers import this script (multiprocessing's spawn)
    setup_logging(snakemake.log[0])
    thresholds = ThresholdSet.for_workflow(snakemake.params.thresholds, snakemake.input.thresholds)
    manifest = pd.read_csv(Path(snakemake.input.data) / "manifest.csv")
    modalities = dict(zip(manifest["id"], manifest["modality"]))
    label_folder(snakemake.input.probs, snakemake.output[0], thresholds, modalities, workers=snakemake.threads)
