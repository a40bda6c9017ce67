"""Snakemake script: the trained model with what decides its labels (the tuned or configured
thresholds, the training nucleus sizes), as the label rule and users' segment read it."""

from nucleoflow.logs import setup_logging
from nucleoflow.options import ThresholdSet
from nucleoflow.package import tuned_model
from nucleoflow.scale import training_sizes

setup_logging(snakemake.log[0])
tuned_model(
    snakemake.input.model,
    ThresholdSet.for_workflow(snakemake.params.thresholds, snakemake.input.thresholds),
    snakemake.output.model,
    training_sizes(snakemake.input.data),
)
