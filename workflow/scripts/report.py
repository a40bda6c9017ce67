"""Snakemake script: the report pages, results/report/index.html and measurements.html."""

import json

import pandas as pd

from nucleoflow.logs import setup_logging
from nucleoflow.options import ThresholdSet
from nucleoflow.report import write_report

setup_logging(snakemake.log[0])
write_report(
    snakemake.output.index,
    snakemake.output.measurements,
    pd.read_csv(snakemake.input.per_image),
    pd.read_csv(snakemake.input.summary),
    snakemake.input.data,
    snakemake.input.labels,
    pd.read_csv(snakemake.input.history),
    json.loads(open(snakemake.input.card).read()),
    ThresholdSet.for_workflow(snakemake.params.thresholds, snakemake.input.thresholds).to_json(),
    snakemake.params.source,
    pd.read_csv(snakemake.input.robustness),
)
