"""Issue 21: a second head runs end to end in the smoke workflow from its own module
(src/nucleoflow/distance.py, registered in heads.py): trained on its own targets and loss,
tuned, labelled through Segmenter, scored and packaged, with nothing else changed but the config."""

import json

import pandas as pd
import pytest
import tifffile
import yaml
from runner import copy_workflow, snakemake, write_config


@pytest.fixture(scope="module")
def distance_run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("distance"))
    overlay = write_config(work / "head.yaml", model={"head": "distance"}, train={"targets": "distance", "border_weight": 1.0})
    snakemake(work, "--configfile", ".test/config/config.yaml", overlay)
    return work


@pytest.mark.slow
def test_the_distance_head_is_trained_tuned_labelled_and_packaged(distance_run):
    results = distance_run / "results"
    card = json.loads((results / "package" / "model.json").read_text())
    assert card["config"]["head"] == "distance" and card["config"]["n_classes"] == 2 and card["train"]["targets"] == "distance"
    history = pd.read_csv(results / "model" / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    counts = [int(tifffile.imread(p).max()) for p in sorted((results / "labels").glob("*.tif"))]
    assert len(counts) == 6 and sum(counts) > 50
    summary = pd.read_csv(results / "metrics" / "summary.csv").set_index(["split", "modality"])
    # 6 short CPU epochs of a head learning from scratch: well above an untrained net's 0.
    assert summary.loc[("test", "all"), "dsb"] > 0.1
    rdf = yaml.safe_load((results / "package" / "bioimageio" / "rdf.yaml").read_text())
    channels = rdf["outputs"][0]["axes"][1]["channel_names"]
    assert channels == ["foreground", "distance"] and "distance to its edge" in rdf["outputs"][0]["description"]


def test_a_head_given_targets_it_cannot_learn_is_refused_before_any_job(tmp_path):
    work = copy_workflow(tmp_path)
    overlay = write_config(work / "head.yaml", model={"head": "distance"})
    result = snakemake(work, "-n", "--configfile", ".test/config/config.yaml", overlay, check=False)
    assert result.returncode != 0
    assert "train.targets 'inner_boundary' are not targets of the distance head (model.head): use distance" in result.stdout
