"""Snakemake script: plot the training curves from the history the train rule wrote."""

import pandas as pd

from nucleoflow.curves import plot_history
from nucleoflow.logs import setup_logging

setup_logging(snakemake.log[0])
plot_history(pd.read_csv(snakemake.input.history), snakemake.output[0])
