import os
import re
from pathlib import Path

import nucleoflow
from nucleoflow.deps import module_files
from nucleoflow.shipped import model_path

# --use-conda: every env installs this package from the source folder the workflow imports it
# from (envs/*.yaml: -e ${NUCLEOFLOW_SRC}); set NUCLEOFLOW_SRC yourself to use another copy.
os.environ.setdefault(
    "NUCLEOFLOW_SRC", str(Path(nucleoflow.__file__).resolve().parents[2])
)


def lib(*modules):
    """Library files a rule's script imports, directly (the modules named, which a test checks
    against the script) or through them: Snakemake does not track imports, so listing them as
    inputs makes code edits rerun exactly the affected rules. Found in the installed package,
    so this also holds when the workflow is deployed elsewhere (snakedeploy, module).
    """
    return module_files(*modules)


def data_source(wildcards):
    """A local folder of images/labels is used in place; anything else goes through download."""
    url = config["data"]["url"]
    if "://" not in url and Path(url).is_dir():
        return url
    return "results/download/archive.zip"


def segment_input(wildcards):
    """The user's image folder; asked for only when the segment target is built."""
    folder = config["segment"]["input_dir"]
    if not folder:
        raise ValueError(
            "segment.input_dir is empty: run e.g. "
            "snakemake segment --config segment='{input_dir: my_images, model: results/model/model.pt}'"
        )
    return folder


def tuned_thresholds(wildcards):
    """With postprocess.tune, thresholds tuned on the validation split; else none (config values)."""
    if not config["postprocess"]["tune"]:
        return []
    if "val" not in config["predict"]["splits"]:
        raise ValueError(
            "postprocess.tune needs validation predictions: add val to predict.splits"
        )
    return "results/tune/thresholds.json"


def fixed_thresholds(wildcards):
    """The configured thresholds, used only when they are not tuned (so they do not rerun it)."""
    if config["postprocess"]["tune"]:
        return {}
    return {k: v for k, v in config["postprocess"].items() if k != "tune"}


def tiling_config(wildcards):
    """The predict settings segment uses (all but splits, so choosing splits reruns no segment)."""
    return {k: v for k, v in config["predict"].items() if k != "splits"}


def text_numbers(node, key=""):
    """Config keys whose value YAML read as text though it looks like a number: YAML 1.1 wants a
    dot and a signed exponent (1.0e-4), so the schema's type error on 1e-4 would puzzle users.
    """
    if isinstance(node, dict):
        return [k for name, v in node.items() for k in text_numbers(v, f"{key}{name}.")]
    if isinstance(node, str) and re.fullmatch(
        r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", node
    ):
        return [f"{key[:-1]}: {node}"]
    return []
