import re
from pathlib import Path

LIBRARY = Path(workflow.basedir) / "workflow" / "scripts" / "nucleoflow"


def lib(*modules):
    """Library modules a rule's script imports (transitively): Snakemake does not track
    imports, so listing them as inputs makes code edits rerun exactly the affected rules.
    """
    return [
        str(LIBRARY / f"{name}.py") for name in ("__init__", "errors", "io") + modules
    ]


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
