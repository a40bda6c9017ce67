"""The BioImage.IO package of the shipped model passes bioimageio.core's own test, offline."""

import numpy as np
import yaml

from nucleoflow.engine import load_engine
from nucleoflow.normalize import normalize
from nucleoflow.shipped import MODELS

PACKAGE = MODELS / "dsb2018_unet" / "bioimageio"


def test_shipped_package_passes_bioimageio_core_test_model():
    from bioimageio.core import test_model

    summary = test_model(PACKAGE / "rdf.yaml")
    assert summary.status == "passed", summary.format()
    rdf = yaml.safe_load((PACKAGE / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5") and set(rdf["weights"]) == {"torchscript", "onnx"}
    assert [p["id"] for p in rdf["inputs"][0]["preprocessing"] if p["id"] != "ensure_dtype"] == ["scale_range", "clip"]
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["background", "interior", "border"]


def test_shipped_package_holds_the_shipped_models_weights():
    """Its test output is what nucleoflow's own engine computes from model.pt (a stale package fails)."""
    raw = np.load(PACKAGE / "test_input.npy")[0].transpose(1, 2, 0)
    engine = load_engine(MODELS / "dsb2018_unet" / "model.pt", "torch", 1)
    mine = engine(normalize(raw)[None])
    np.testing.assert_allclose(np.load(PACKAGE / "test_output.npy"), mine, atol=1e-4)
