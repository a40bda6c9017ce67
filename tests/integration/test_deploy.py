"""Deployment: the conda envs install this package with what its steps import (and no torch in
the light ones), and the workflow runs as a Snakemake module from another folder, set up by
snakedeploy deploy-workflow."""

import ast
import os
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest
import yaml
from runner import ROOT

from nucleoflow.deps import script_files

# Import name -> conda-forge (or PyPI, for the pip section) package name, where they differ.
PACKAGE = {"skimage": "scikit-image", "PIL": "pillow", "matplotlib": "matplotlib-base", "ome_zarr": "ome-zarr", "bioimageio": "bioimageio.core"}
HEAVY = {"torch", "openvino", "onnxruntime", "onnx"}


def rules():
    """(rule, env file, its script) for every rule with a conda env and a script."""
    found = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            env, script = re.search(r'conda:\s*"\.\./\.\./(envs/\w+\.yaml)"', block), re.search(r'script:\s*"\.\./(scripts/\w+\.py)"', block)
            if env and script:
                found.append((block.split(":")[0], ROOT / env.group(1), ROOT / "workflow" / script.group(1)))
    return found


def env_packages(path):
    """Names of the conda and pip packages an env file lists, and its pip lines."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pip = next((d["pip"] for d in deps if isinstance(d, dict)), [])
    names = {re.split(r"[=<> ]", d)[0] for d in deps if isinstance(d, str)} | {re.split(r"[=<> ]", p)[0] for p in pip if not p.startswith("-")}
    return names, pip


def third_party_imports(files):
    """Top-level names of the modules outside the standard library and this package that files import."""
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "nucleoflow"}


@pytest.mark.parametrize("rule, env, script", rules(), ids=lambda v: v if isinstance(v, str) else "")
def test_envs_hold_what_their_steps_import(rule, env, script):
    names, pip = env_packages(env)
    needed = {PACKAGE.get(n, n) for n in third_party_imports([script, *script_files(script)])}
    assert needed <= names, f"rule {rule}: {env.name} lacks {sorted(needed - names)}"
    core = {re.split(r"[=<> ]", d)[0] for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert core <= names, f"{env.name} lacks core dependencies {sorted(core - names)}: pip would fetch them"
    assert "-e ${NUCLEOFLOW_SRC}" in pip
    if env.name != "torch.yaml":
        assert not names & HEAVY, f"{env.name} pulls {names & HEAVY}"


def test_env_pip_line_installs_this_package():
    """The envs' pip line, with NUCLEOFLOW_SRC as the Snakefile sets it, names this project."""
    env = {**os.environ, "NUCLEOFLOW_SRC": str(ROOT)}
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--no-build-isolation", "-e", "${NUCLEOFLOW_SRC}"]
    requirements = ROOT / "envs" / "torch.yaml"  # pip expands ${VAR} in requirement files only: write one
    lines = [p for p in env_packages(requirements)[1] if p.startswith("-e")]
    req = ROOT / ".pytest-requirements.txt"
    try:
        req.write_text("\n".join(lines) + "\n")
        result = subprocess.run(cmd[:-2] + ["-r", str(req)], env=env, capture_output=True, text=True)
    finally:
        req.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"Would install nucleoflow-\d", result.stdout)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, crops_zip):
    """snakedeploy deploy-workflow of this repository into a fresh folder. Its local provider
    writes the module's path relative to the new folder (a GitHub source gets github(...)
    there): point it at this checkout's Snakefile."""
    dest = tmp_path_factory.mktemp("deployed")
    subprocess.run(["snakedeploy", "deploy-workflow", str(ROOT), str(dest), "--branch", "main"], check=True, capture_output=True)
    snakefile = dest / "workflow" / "Snakefile"
    snakefile.write_text(re.sub(r'snakefile:\s*\n\s*"Snakefile"', f'snakefile:\n        "{ROOT / "Snakefile"}"', snakefile.read_text()))
    # The deploying folder's config is the whole config (a module reads no configfile of its
    # own): the defaults with the smoke run's values over them.
    smoke = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for section, values in yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text()).items():
        smoke[section].update(values)
    smoke["data"]["url"] = str(crops_zip)
    (dest / "images").mkdir()
    with zipfile.ZipFile(crops_zip) as archive:
        for name in sorted(n for n in archive.namelist() if n.startswith("images/"))[:2]:
            (dest / name).write_bytes(archive.read(name))
    smoke["segment"].update(input_dir="images", model="dsb2018_unet")
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(smoke))
    return dest


def snakemake(dest, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=dest, env=env, capture_output=True, text=True)


def test_module_plans_the_whole_smoke_workflow_from_another_folder(deployed):
    result = snakemake(deployed, "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rule in ("download", "preprocess", "train", "predict", "tune", "tuned_model", "label", "evaluate", "report", "package"):
        assert re.search(rf"^{rule}\s+1$", result.stdout, re.M), rule


def test_module_segments_images_from_another_folder(deployed):
    result = snakemake(deployed, "segment")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    written = {p.name for p in (deployed / "results" / "segment").iterdir()}
    stems = [p.stem for p in (deployed / "images").iterdir()]
    assert {f"{s}.tif" for s in stems} | {"summary.csv"} <= written  # with the smoke config's other outputs


def test_readme_ci_and_envs_install_with_the_constraints():
    """README command 1, .ci/run and every conda env resolve the versions the tests passed with:
    both pip installs of command 1 (the CPU torch first) take constraints.txt, CI installs the
    same way, and constraints.txt pins the packages the tests depend on."""
    command_1 = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("python3 -m venv"))
    installs = [part.strip() for part in command_1.split("&&") if part.strip().startswith("pip install")]
    assert len(installs) == 2 and all("-c constraints.txt" in part for part in installs), command_1
    assert "torch==2.13.0" in installs[0] and "download.pytorch.org/whl/cpu" in installs[0]
    ci = [line.replace("--quiet ", "") for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("pip install")]
    assert ci[:2] == installs  # then the napari extra, for its own tests
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line and not line.startswith("#"))
    for package in ("torch", "numpy", "scikit-image", "openvino", "snakemake", "tifffile", "pytest"):
        assert package in pins, f"constraints.txt pins no {package}"
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        _, pip = env_packages(env)
        assert "-c ${NUCLEOFLOW_SRC}/constraints.txt" in pip, env.name
