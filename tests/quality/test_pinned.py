"""Pinned quality (as stardist pins its models): each shipped model and the postprocess reproduce
numbers recorded on the committed crops (the DSB2018 ones for dsb2018_unet, the MoNuSeg
validation ones for he_unet), so a change that costs even a point of DSB fails here.

The numbers come from tests/pinned/record.py; rerun it only for a change meant to alter
results, and say why in the commit.
"""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import ROOT
from pinned.record import PINNED, TILING, read_crops

from nucleoflow.metrics import image_scores
from nucleoflow.options import Thresholds
from nucleoflow.postprocess import instances
from nucleoflow.segment import Segmenter

HERE = ROOT / "tests" / "pinned"
TOLERANCE = 0.005


@pytest.fixture(scope="module", params=sorted(PINNED))
def measured(request):
    """(recorded, measured) DSB per committed crop of one shipped model."""
    crops, recorded_in = PINNED[request.param]
    segmenter = Segmenter(request.param, threads=2, **TILING)
    measured = {stem: image_scores(truth, segmenter(image, stem))["dsb"] for stem, (image, truth) in read_crops(crops).items()}
    return pd.read_csv(recorded_in / "dsb_per_image.csv").set_index("stem")["dsb"], measured


def test_shipped_model_reproduces_recorded_dsb_per_image(measured):
    recorded, measured = measured
    assert sorted(measured) == sorted(recorded.index)
    off = {stem: round(measured[stem] - recorded[stem], 4) for stem in recorded.index if abs(measured[stem] - recorded[stem]) > TOLERANCE}
    assert not off, f"DSB moved by more than {TOLERANCE} on {len(off)} crops: {off}"
    assert np.mean(list(measured.values())) == pytest.approx(recorded.mean(), abs=TOLERANCE / 5)


def test_instances_reproduce_recorded_labels():
    probs = tifffile.imread(HERE / "probs.tif").astype(np.float32)
    recorded = tifffile.imread(HERE / "labels.tif")
    thresholds = [Thresholds(**t) for t in json.loads((HERE / "thresholds.json").read_text())]
    for plane, chosen in zip(recorded, thresholds):
        np.testing.assert_array_equal(instances(probs, chosen), plane, err_msg=str(chosen))
