import multiprocessing
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi
from synthetic import discs, probabilities_from

from nucleoflow.atomic import write_tiff
from nucleoflow.engine import load_engine
from nucleoflow.errors import InputError
from nucleoflow.infer import probabilities
from nucleoflow.metrics import image_scores
from nucleoflow.model import load_model
from nucleoflow.options import Thresholds, ThresholdSet, Tiling
from nucleoflow.postprocess import instances, label_folder
from nucleoflow.reader import decode_image, to_hwc
from nucleoflow.shipped import model_path
from nucleoflow.targets import BORDER, INTERIOR, instance_targets


def test_targets_separate_touching_nuclei():
    labels = discs()
    target = instance_targets(labels)
    assert set(np.unique(target)) == {0, INTERIOR, BORDER}
    # Interiors alone split the two touching discs into separate components.
    assert ndi.label(target == INTERIOR)[1] == 4
    # Plain foreground would merge them.
    assert ndi.label(labels > 0)[1] == 3


def test_perfect_probabilities_recover_every_nucleus():
    labels = discs()
    pred = instances(probabilities_from(labels))
    assert pred.dtype == np.uint32 and pred.max() == 4
    assert image_scores(labels, pred)["dsb"] == 1.0


def test_noisy_probabilities_still_recover_nuclei():
    labels = discs()
    rng = np.random.default_rng(0)
    probs = probabilities_from(labels) + rng.uniform(0, 0.3, (3, *labels.shape)).astype(np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    assert image_scores(labels, instances(probs))["dsb"] > 0.9


def test_thresholds_and_small_objects():
    labels = discs()
    probs = probabilities_from(labels)
    probs[:, 0:3, 0:3] = np.array([0, 1, 0], np.float32)[:, None, None]  # a 9-pixel speck
    assert instances(probs, Thresholds(min_area=10)).max() == 4
    assert instances(probs, Thresholds(min_area=5, min_seed_area=1)).max() == 5
    # A seed threshold above every interior probability finds nothing.
    assert instances(probs * 0.4, Thresholds(seed_threshold=0.5)).max() == 0


@pytest.fixture(scope="module")
def probability_maps(crops_zip, tmp_path_factory):
    """The shipped model's probabilities of eight committed crops (five fluorescence, two
    histology, one brightfield), written as the predict rule writes them."""
    folder = tmp_path_factory.mktemp("predict")
    engine = load_engine(model_path("dsb2018_unet"), "auto", threads=2)
    with zipfile.ZipFile(crops_zip) as archive:
        for name in sorted(n for n in archive.namelist() if n.startswith("images/"))[:8]:
            image = to_hwc(decode_image(archive.read(name), name), name)
            write_tiff(folder / f"{Path(name).stem}.tif", probabilities(engine, image, Tiling(tta=False)).astype(np.float16))
    return folder


def test_label_folder_with_two_workers_writes_what_one_writes(probability_maps, crops_zip, tmp_path):
    """Each image with its modality's thresholds (the shipped model's card), as the rule runs."""
    thresholds = ThresholdSet.from_json(load_model(model_path("dsb2018_unet"))[1]["postprocess"])
    crops = pd.read_csv(crops_zip.parent / "crops.csv")
    modalities = dict(zip(crops["stem"], crops["modality"]))
    for workers in (1, 2):
        label_folder(probability_maps, tmp_path / str(workers), thresholds, modalities, workers=workers)
    one, two = (sorted((tmp_path / str(w)).iterdir()) for w in (1, 2))
    assert [p.name for p in one] == [p.name for p in two] == [p.name for p in sorted(probability_maps.iterdir())]
    assert sum(tifffile.imread(p).max() for p in one) > 150 and all(tifffile.imread(p).max() > 0 for p in one)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))
    assert multiprocessing.active_children() == []


def test_a_damaged_probability_map_is_named_and_nothing_is_written(probability_maps, tmp_path):
    probs = tmp_path / "predict"
    shutil.copytree(probability_maps, probs)
    damaged = sorted(probs.iterdir())[5]
    damaged.write_bytes(damaged.read_bytes()[:300])  # truncated, as by a full disk
    with pytest.raises(InputError, match=f"{damaged}: cannot be read as a probability map"):
        label_folder(probs, tmp_path / "labels", ThresholdSet(), {}, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predict"]  # no labels folder, no staging left
    assert multiprocessing.active_children() == []
