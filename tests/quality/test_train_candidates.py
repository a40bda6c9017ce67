"""The prepared GPU comparison of issue 12 (models/train_candidates.py), run on the CPU at a toy
budget on committed crops: it trains, tunes, judges and applies its decision rule."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from runner import ROOT

from nucleoflow.dataset import build_dataset
from nucleoflow.scale import training_sizes


@pytest.mark.slow
def test_candidates_are_trained_judged_and_decided(crops_zip, tmp_path):
    data = tmp_path / "data"
    build_dataset(crops_zip, data, max_images=12, seed=1, val_fraction=0.25, test_fraction=0.0)
    small = ["--set", "model.depth=2", "--set", "model.base_width=8", "--set", "train.crop_size=96", "--set", "train.batch_size=8"]
    command = [sys.executable, str(ROOT / "models" / "train_candidates.py"), "--data", str(data), "--out", str(tmp_path / "out")]
    command += ["--budget-s", "16", "--epochs", "2", "--candidates", "inner", "robust", *small]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "out" / "candidates.csv")
    assert list(table["model"]) == ["shipped", "inner", "robust"]
    assert table["val DSB"].between(0, 1).all() and (table.loc[1:, "crops"] > 0).all()
    assert table.loc[0, "val DSB"] > table.loc[1, "val DSB"]  # seconds of CPU training lose to the shipped model
    decision = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert decision["winner"] == "shipped" and set(decision["checks"]) == {"inner", "robust"}
    assert decision["checks"]["inner"]["val DSB"] is False
    for name in ("inner", "robust"):
        history = pd.read_csv(tmp_path / "out" / name / "history.csv")
        assert len(history) == 2
    # Every model is judged as the package ships it: with the training nucleus sizes Segmenter zooms to.
    for name in ("shipped", "inner", "robust"):
        assert json.loads((tmp_path / "out" / name / "tuned.json").read_text())["nucleus_diameter_px"] == training_sizes(data)
        variants = pd.read_csv(tmp_path / "out" / name / "robustness.csv").set_index("variant")
        assert variants.loc["unchanged", "DSB"] == pytest.approx(table.set_index("model").loc[name, "val DSB"])

    again = subprocess.run([*command[:6], "--judge-only", "--candidates", "robust", *small], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    judged = pd.read_csv(tmp_path / "out" / "candidates.csv")
    assert list(judged["model"]) == ["shipped", "robust"]
    assert judged["val DSB"].tolist() == pytest.approx(table.loc[[0, 2], "val DSB"].tolist()) and judged.loc[1, "crops"] == table.loc[2, "crops"]
