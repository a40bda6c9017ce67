"""Snakemake script: probability TIFFs -> instance label TIFFs."""

import json
from pathlib import Path

import pandas as pd

from nucleoflow.io import setup_logging
from nucleoflow.postprocess import label_folder

setup_logging(snakemake.log[0])
thresholds = snakemake.params.thresholds or json.loads(Path(snakemake.input.thresholds).read_text())
manifest = pd.read_csv(Path(snakemake.input.data) / "manifest.csv")
label_folder(snakemake.input.probs, snakemake.output[0], thresholds, dict(zip(manifest["id"], manifest["modality"])))
