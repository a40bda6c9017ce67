"""Training with the robustness recipe: touching-border targets, a weighted border class, zoom
and colour augmentation, on the committed real crops."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from nucleoflow.augment import Augmentation
from nucleoflow.crops import load_split, make_batch, resident
from nucleoflow.dataset import build_dataset
from nucleoflow.heads import get_head
from nucleoflow.targets import BORDER, INTERIOR
from nucleoflow.train import train

MODEL = {"depth": 2, "base_width": 8, "norm": "batch"}
ROBUST = {"zoom": [0.5, 2.0], "aspect": 0.2, "stain": 0.2, "hue": 0.05, "saturation": 0.3, "grayscale": 0.1, "invert": 0.05}


@pytest.fixture(scope="module")
def data_dir(crops_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "data"
    build_dataset(crops_zip, out, max_images=12, seed=1, val_fraction=0.25, test_fraction=0.0)
    return out


def mean_interior_area(targets):
    areas = [np.bincount(ndi.label(t == INTERIOR)[0].ravel())[1:] for t in targets.numpy()]
    return np.mean(np.concatenate(areas))


def test_zoom_augmentation_changes_nucleus_size(data_dir):
    import pandas as pd

    examples = load_split(data_dir, pd.read_csv(data_dir / "manifest.csv"), "train")
    picks = np.arange(len(examples)).repeat(4)
    areas = {}
    for zoom in (0.5, 1.0, 2.0):
        aug = Augmentation(zoom=(zoom, zoom), aspect=0, stain=0, hue=0, saturation=0, grayscale=0, invert=0)
        images, targets = make_batch(examples, picks, 96, np.random.default_rng(0), torch.device("cpu"), aug)
        assert images.shape == (len(picks), 3, 96, 96) and set(targets.unique().tolist()) <= {0, 1, 2}
        areas[zoom] = mean_interior_area(targets)
    assert areas[0.5] < 0.5 * areas[1.0] and areas[2.0] > 2 * areas[1.0], areas


def test_weighted_border_loss_counts_border_errors_more():
    target = torch.zeros(1, 8, 8, dtype=torch.int64)
    target[0, 2:6, 2:6], target[0, 3:5, 3:5] = BORDER, INTERIOR
    logits = torch.zeros(1, 3, 8, 8)  # uniform: every pixel equally wrong
    logits[:, INTERIOR] = 2.0  # border pixels called interior
    loss = get_head("interior_border").loss
    assert loss(logits, target, 3.0) > loss(logits, target, 1.0)


def test_robust_recipe_trains_on_real_crops(data_dir, tmp_path):
    cfg = {
        "epochs": 2,
        "samples_per_epoch": 16,
        "batch_size": 4,
        "crop_size": 96,
        "learning_rate": 0.003,
        "weight_decay": 0.0001,
        "modality_balance": 0.5,
        "seed": 0,
        "targets": "touching",
        "border_weight": 3.0,
        "augment": {**ROBUST, "lowres": 0.5},
    }
    history = train(data_dir, tmp_path / "epochs", tmp_path / "training", MODEL, cfg)
    assert len(history) == 2 and np.isfinite(history["train_loss"]).all()
    assert (tmp_path / "epochs" / "epoch_002.pt").exists()


def test_device_resident_batches_equal_host_batches(data_dir):
    """On a GPU the training images stay on the device, pre-padded: the same draws give the
    same crops as the host (numpy) path, with and without zoom."""
    import pandas as pd


    examples = load_split(data_dir, pd.read_csv(data_dir / "manifest.csv"), "train", "touching")
    picks = np.arange(len(examples)).repeat(3)
    for aug in (Augmentation.from_config(None), Augmentation.from_config(ROBUST)):
        on_device = resident(examples, torch.device("cpu"), 128, aug)
        host = make_batch(examples, picks, 128, np.random.default_rng(5), torch.device("cpu"), aug)
        device = make_batch(on_device, picks, 128, np.random.default_rng(5), torch.device("cpu"), aug)
        torch.testing.assert_close(device[0], host[0])
        assert torch.equal(device[1], host[1])
