"""Each rule's code inputs are the library files its script runs, read from the import graph
(deps.py), and no module drags in modules it does not use (tests/integration/test_workflow.py checks, on a
finished smoke run, which rules an edit of each module reruns)."""

import ast
import re

import pytest
from conftest import ROOT

from nucleoflow.deps import PACKAGE, module_files, script_files, script_modules

RULES = ROOT / "workflow" / "rules"
SCRIPTS = ROOT / "workflow" / "scripts"


def rules():
    """(rule name, the script named in its library(...) input or None, its script's file name)
    for every rule with a script."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":")[0]
            script = re.search(r'script:\s*"\.\./scripts/(\w+\.py)"', block)
            library = re.search(r'\blib=library\("(\w+\.py)"\)', block)
            if script:
                found.append((name, library.group(1) if library else None, script.group(1)))
    return found


def names(files):
    return {p.rsplit("/", 1)[-1].removesuffix(".py") for p in files}


@pytest.mark.parametrize("name, library, script", rules(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_rule_with_a_script_has_its_scripts_library_as_inputs(name, library, script):
    assert library == script, f"rule {name} runs {script}: its inputs need lib=library({script!r})"


def test_script_files_follow_imports_from_the_script():
    assert script_modules(SCRIPTS / "train.py") == {"logs", "train"}
    files = names(script_files(SCRIPTS / "segment.py"))
    assert {"segment", "blocks", "infer", "normalize", "appearance", "options", "postprocess", "reader", "logs", "__init__"} <= files
    assert "train" not in files


def test_module_files_follow_imports():
    files = names(module_files("segment"))
    assert {"segment", "blocks", "infer", "normalize", "appearance", "options", "postprocess", "__init__"} <= files
    assert "train" not in files


def test_training_runs_no_reading_watershed_postprocessing_or_evaluation_code():
    """Issue 21: the train rule reran when reader.py (re-exported by io.py, which every rule
    imported), postprocess.py (its validation score), metrics.py, options.py or curves.py (its
    plot, now the curves rule's) changed. It runs the network and its heads' targets and loss,
    augmentation, crops, schedule and their helpers; the watershed and the score that picks the
    epoch are the best_epoch rule's."""
    assert names(script_files(SCRIPTS / "train.py")) == {
        "__init__", "errors", "logs", "atomic", "progress", "device", "shipped", "lineage",  # helpers
        "train", "model", "loss", "augment", "crops", "schedule", "checkpoint", "launch",
        "head", "heads", "interior_border", "distance", "targets",  # what the network predicts
        "prepared", "normalize", "appearance",  # the prepared data, as the network sees them
    }  # fmt: skip


def test_the_best_epoch_is_picked_by_the_watershed_and_its_score():
    assert {"watershed", "validation", "scores", "best_epoch"} <= names(script_files(SCRIPTS / "best_epoch.py"))


def test_training_data_are_decoded_without_the_file_reader():
    """Preprocess decodes the archive's bytes (decode.py): editing how files and folders are
    opened or listed (reader.py, OME-Zarr) never retrains."""
    files = names(script_files(SCRIPTS / "preprocess.py"))
    assert "decode" in files and not files & {"reader", "zarr_reader"}


def test_download_runs_only_its_own_code():
    assert names(script_files(SCRIPTS / "download.py")) == {"__init__", "errors", "logs", "atomic", "download"}


def test_no_module_imports_what_it_does_not_use():
    """A re-export (an import kept only for others to import from here) would make every rule
    that runs the module depend on what it re-exports: none, but the package's own InputError."""
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "__init__.py":
            continue
        text = path.read_text()
        assert "F401" not in text, f"{path.name} keeps an unused import (noqa: F401)"
        tree = ast.parse(text)
        assert not any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets) for n in tree.body), path.name
