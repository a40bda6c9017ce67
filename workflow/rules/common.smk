import atexit
import os
import re
import shutil
import sys
from pathlib import Path

import nucleoflow
import yaml

from nucleoflow.clobber import check_outside_results
from nucleoflow.deps import script_files
from nucleoflow.errors import InputError
from nucleoflow.heads import get_head
from nucleoflow import options
from nucleoflow.atomic import MIN_FREE_MB
from nucleoflow.logs import ERRORS_DIR
from nucleoflow.reader import file_fingerprint, image_entries
from nucleoflow.shipped import model_path

# --use-conda: every env installs this package from the source folder the workflow imports it
# from (envs/*.yaml: -e ${NUCLEOFLOW_SRC}); set NUCLEOFLOW_SRC yourself to use another copy.
os.environ.setdefault(
    "NUCLEOFLOW_SRC", str(Path(nucleoflow.__file__).resolve().parents[2])
)


def library(script):
    """The library files that workflow/scripts/<script> runs: the package modules it imports,
    read from its import statements, and every module those import in turn (deps.py).
    Snakemake does not track imports, so listing them as inputs makes a code edit rerun exactly
    the rules whose code it changes. Found in the installed package, so this also holds when
    the workflow is deployed elsewhere (snakedeploy, module).
    """
    return script_files(workflow.source_path(f"../scripts/{script}"))


def data_source(wildcards):
    """A local folder of images/labels is used in place; anything else goes through download."""
    url = config["data"]["url"]
    if "://" not in url and Path(url).is_dir():
        return url
    return "results/download/archive.zip"


def segment_folder_checked():
    """segment.input_dir, refused (naming the key) when empty or not a folder."""
    folder = config["segment"]["input_dir"]
    if not folder:
        raise ValueError(
            "segment.input_dir is empty: run e.g. "
            "snakemake segment --config segment='{input_dir: my_images, model: results/package/model.pt}'"
        )
    if not Path(folder).is_dir():
        raise ValueError(
            f"segment.input_dir {folder!r} is not a folder (from {Path.cwd()}): "
            "set it to the folder of your images"
        )
    return folder


def segment_input_problem():
    """A message when segment.input_dir lies inside results/, whose folders Snakemake deletes
    (results/segment) before their rules run again, else None; an empty or missing folder is
    refused when the segment target is asked for (segment_folder_checked)."""
    folder = config["segment"]["input_dir"]
    try:
        if folder:
            check_outside_results(folder, "segment.input_dir")
    except InputError as exc:
        return f"segment.input_dir {exc}"
    return None


def segment_input(wildcards):
    """The user's images themselves, file by file (and OME-Zarr folders): a changed, added or
    removed image reruns segment; asked for only when the segment target is built. A path with
    braces is left out: Snakemake reads {name} in an input as a wildcard (WildcardError); its
    fingerprint (segment_fingerprint, a param) still reruns segment when it changes."""
    images, _ = image_entries(segment_folder_checked())
    return [str(p) for p in images if not re.search(r"[{}]", str(p))]


def segment_fingerprint(wildcards):
    """What identifies each input image (size, mtime, inode; every file of an OME-Zarr) and the
    folder itself: an image replaced by another of the same name, even with an older mtime,
    or another folder, reruns segment (params trigger); results of another input are never served.
    """
    folder = segment_folder_checked()
    images, _ = image_entries(folder)
    return {
        "input_dir": str(Path(folder).resolve()),
        "images": {p.name: file_fingerprint(p) for p in images},
    }


def tuned_thresholds(wildcards):
    """With postprocess.tune, thresholds tuned on the validation split; else none (config values)."""
    if not config["postprocess"]["tune"]:
        return []
    return "results/tune/thresholds.json"


def fixed_thresholds(wildcards):
    """The configured thresholds, used only when they are not tuned (so they do not rerun it)."""
    if config["postprocess"]["tune"]:
        return {}
    return {k: v for k, v in config["postprocess"].items() if k != "tune"}


def segment_mem_mb(wildcards, threads):
    """Memory of a segment job: nucleoflow.options.segment_mem_mb (its docstring says why)."""
    return options.segment_mem_mb(config["predict"]["memory_mb"], threads)


def tiling_config(wildcards):
    """The predict settings segment uses (all but splits, so choosing splits reruns no segment)."""
    return {k: v for k, v in config["predict"].items() if k != "splits"}


def block_config(wildcards):
    """The segment settings of the blocks an image is labelled in (nuclei crossing a block's
    border are joined, so they can change the labels): the label rule's, as segment's.
    """
    return {k: config["segment"][k] for k in ("block_size", "context")}


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


def coerce_text_values(node, schema, key=""):
    """Values given as text on the command line (--config segment='{block_size: 64}' gives the
    text '64') where the schema wants a number, boolean or null: read as YAML reads them.
    Returns the keys changed."""
    changed = []
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    for name, value in list(node.items()) if isinstance(node, dict) else []:
        sub = props.get(name)
        if sub is None:
            continue
        if isinstance(value, dict):
            changed += coerce_text_values(value, sub, f"{key}{name}.")
        elif isinstance(value, str) and value.strip():
            types = sub.get("type", [])
            types = set(types if isinstance(types, list) else [types])
            if not types & {"integer", "number", "boolean", "null"}:
                continue
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            fits = (
                (isinstance(parsed, bool) and "boolean" in types)
                or (parsed is None and "null" in types)
                or (
                    isinstance(parsed, int)
                    and not isinstance(parsed, bool)
                    and types & {"integer", "number"}
                )
                or (isinstance(parsed, float) and "number" in types)
            )
            if fits:
                node[name] = parsed
                changed.append(f"{key}{name}")
    return changed


def contradictions(config):
    """Settings that contradict each other, each message naming the keys (checked before any
    job starts)."""
    problems = []
    segment, predict, model, train = (
        config["segment"],
        config["predict"],
        config["model"],
        config["train"],
    )
    if not segment["context"] < segment["block_size"]:
        problems.append(
            f"segment.context ({segment['context']}) must be below segment.block_size ({segment['block_size']}): "
            "each block is labelled with context pixels of image around it"
        )
    multiple = 2 ** model["depth"]
    for key, value in (
        ("predict.tile_size", predict["tile_size"]),
        ("train.crop_size", train["crop_size"]),
    ):
        # (tile_size 0, chosen from the memory budget, is always a multiple)
        if value % multiple:
            problems.append(
                f"{key} ({value}) must be a multiple of 2**model.depth = {multiple}"
            )
    problems += get_head(model["head"]).training_problems(
        train["targets"], train["border_weight"]
    )
    return problems


def disk_space_problem(folder="."):
    """A message when the disk of `folder` has under MIN_FREE_MB free, else None."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= MIN_FREE_MB * 2**20:
        return None
    return (
        f"only {free / 2**20:.0f} MiB free on the disk of {Path(folder).resolve()} (at least {MIN_FREE_MB} MiB are needed): "
        "free disk space, or run the workflow from a folder on another disk"
    )


# Training crops of 256 px per second on a CPU of 2 Zen 3 cores (benchmarks/train_speed.py).
CPU_CROPS_PER_S = 6.0


def cpu_training_note(config, model="results/model/model.pt"):
    """A warning, before any job, when the train rule is still to run, this machine has no
    NVIDIA GPU and the schedule is not fitted to a time budget; else None."""
    train = config["train"]
    if Path(model).exists() or train["budget_min"] or shutil.which("nvidia-smi"):
        return None
    crops = train["epochs"] * train["samples_per_epoch"]
    hours = crops / CPU_CROPS_PER_S / 3600
    if hours < 2:
        return None
    return (
        f"no NVIDIA GPU on this machine: the train rule's schedule ({train['epochs']} epochs x {train['samples_per_epoch']} crops) "
        f"takes about {hours:.0f} hours on 2 CPU cores (minutes on a GPU). For a CPU: --configfile config/cpu.yaml "
        "(about 90 minutes) or --config train.budget_min=MINUTES; or skip training: `nucleoflow segment` and the "
        "segment rule use the shipped model"
    )


def print_job_errors():
    """The messages of the jobs that failed with an expected error (logs.setup_logging), printed
    after everything Snakemake prints, so they are the last lines the user reads."""
    files = (
        sorted(ERRORS_DIR.glob("*.txt"), key=lambda p: p.stat().st_mtime)
        if ERRORS_DIR.is_dir()
        else []
    )
    for path in files:
        sys.stderr.write(f"\nnucleoflow: error: {path.read_text()}")
