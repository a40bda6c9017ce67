"""nucleoflow: the library behind the nucleus segmentation workflow.

Every workflow script is a thin wrapper around these modules; nothing here imports
snakemake, so the code is usable (and tested) on its own.
"""

from .errors import InputError

__all__ = ["InputError"]
