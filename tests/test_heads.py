"""The heads (head.py): each turns its own perfect output into the real nuclei, its loss prefers
that output, and the model file carries the head to every engine and to the labeller."""

import io
import zipfile

import numpy as np
import pytest
import torch

from nucleoflow.engine import load_engine
from nucleoflow.head import Head
from nucleoflow.heads import DEFAULT, HEADS, get_head
from nucleoflow.metrics import image_scores
from nucleoflow.model import build_unet, load_model, save_model
from nucleoflow.options import Thresholds, ThresholdSet
from nucleoflow.postprocess import instances
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path

# A perfect network's output needs no margins: keep every seed and nucleus.
PERFECT = dict(seed_threshold=0.5, foreground_threshold=0.5, min_seed_area=1, min_area=1)
EPS = 1e-3


def _interior_border_logits(target):
    return torch.log(torch.nn.functional.one_hot(target.long(), 3).permute(0, 3, 1, 2).float().clamp(EPS, 1 - EPS))


def _distance_logits(target):
    maps = torch.stack([(target > 0).float(), (target.float() - 1).clamp(min=0) / 254], dim=1)
    return torch.logit(maps.clamp(EPS, 1 - EPS))


# Logits whose activation is what a perfect network outputs for a target: one per registered
# head (a head registered without one fails test_every_head_is_tested).
IDEAL_LOGITS = {"interior_border": _interior_border_logits, "distance": _distance_logits}


def test_options_default_to_the_registrys_default_head():
    """options.py names the default head itself (it stays free of the heads it never uses)."""
    assert Thresholds().head == DEFAULT
    assert ThresholdSet.from_json({}).default.head == DEFAULT


def test_every_head_is_tested():
    assert set(IDEAL_LOGITS) == set(HEADS)
    assert DEFAULT in HEADS
    for name, head in HEADS.items():
        assert isinstance(head, Head) and head.name == name and head.target_kinds


@pytest.fixture(scope="module")
def real_labels(crops_zip):
    import tifffile

    with zipfile.ZipFile(crops_zip) as archive:
        return [tifffile.imread(io.BytesIO(archive.read(n))).astype(np.uint32) for n in sorted(archive.namelist()) if n.startswith("labels/")]


@pytest.mark.parametrize("name", sorted(HEADS))
def test_a_heads_perfect_output_recovers_the_real_nuclei(name, real_labels):
    """On the 38 committed real crops, the nuclei the head's watershed finds in the maps a perfect
    network would output for its targets are the true ones (measured: interior_border 0.985,
    distance 0.973: seeds at half the distance split a few nuclei that narrow in the middle)."""
    head = get_head(name)
    scores = []
    for labels in real_labels:
        target = head.targets(labels, head.target_kinds[0])
        assert target.dtype == np.uint8 and target.shape == labels.shape
        assert ((target > 0) == (labels > 0)).all()  # every nucleus pixel is foreground, nothing else
        maps = head.activation(IDEAL_LOGITS[name](torch.from_numpy(target)[None]))[0].numpy()
        assert maps.shape == (head.n_outputs, *labels.shape)
        scores.append(image_scores(labels, instances(maps, Thresholds(**PERFECT, head=name)))["dsb"])
    assert np.mean(scores) > 0.96, np.mean(scores)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_a_heads_loss_prefers_its_perfect_output_and_trains(name, real_labels):
    head = get_head(name)
    target = torch.from_numpy(head.targets(real_labels[0], head.target_kinds[0])[None].astype(np.int64))
    perfect = IDEAL_LOGITS[name](target)
    blank = torch.zeros_like(perfect, requires_grad=True)
    assert head.loss(perfect, target) < 0.5 * head.loss(blank, target)
    # Gradients flow to every output channel.
    head.loss(blank, target).backward()
    assert torch.isfinite(blank.grad).all() and (blank.grad.abs().sum(dim=(0, 2, 3)) > 0).all()


def test_the_distance_target_is_the_normalised_distance_to_the_nucleus_edge():
    labels = np.zeros((9, 15), np.uint32)
    labels[1:8, 1:8] = 1  # a 7 x 7 square
    labels[1:8, 8:14] = 2  # touching it: its edge is where the other begins
    target = get_head("distance").targets(labels, "distance")
    # Square 1's centre is 4 px from its edge, square 2's at most 3: each is 255 at its centre.
    assert target[4, 4] == 255 and target[1, 1] == target[4, 7] == 1 + round(254 / 4) and target[4, 8] == 1 + round(254 / 3)
    assert (target[labels == 0] == 0).all() and target[4, 1:8].tolist() == target[4, 1:8][::-1].tolist()


def test_a_head_refuses_training_settings_it_cannot_learn_from():
    distance = get_head("distance")
    assert distance.training_problems("distance", 1.0) == []
    assert "train.targets 'touching' are not targets of the distance head (model.head): use distance" in distance.training_problems("touching", 1.0)
    assert "train.border_weight (3.0)" in distance.training_problems("distance", 3.0)[0]
    assert get_head("interior_border").training_problems("distance", 1.0)[0].endswith("use inner_boundary or touching")
    with pytest.raises(ValueError, match="unknown head 'flows'; use one of interior_border, distance"):
        get_head("flows")


def test_models_saved_before_heads_are_read_as_interior_border():
    assert "head" not in torch.load(model_path("dsb2018_unet"), weights_only=True)["config"]
    assert load_model("dsb2018_unet")[0].config["head"] == "interior_border"
    engine = load_engine("dsb2018_unet", "torch", 1)
    assert engine.head.name == "interior_border"


@pytest.fixture(scope="module")
def distance_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("distance") / "model.pt"
    save_model(build_unet({"depth": 2, "base_width": 4, "norm": "batch", "head": "distance"}).eval(), path)
    return path


@pytest.mark.parametrize("engine", ["openvino", "onnx", "torch"])
def test_every_engine_applies_the_models_head(distance_model, engine):
    """The exported network ends in the head's activation: two sigmoid maps, not a softmax."""
    batch = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(load_model(distance_model)[0](torch.from_numpy(batch))).numpy()
    loaded = load_engine(distance_model, engine)
    assert loaded.head.name == "distance"
    result = loaded(batch)
    assert result.shape == (1, 2, 64, 64)
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_the_segmenter_labels_with_the_models_head(distance_model):
    with Segmenter(distance_model, tta=False) as segmenter:
        assert segmenter.thresholds.default.head == "distance"
        assert segmenter.thresholds.to_json() == Thresholds().values()  # the head is the model's, not the card's
        labels = segmenter(np.random.default_rng(1).random((64, 64)).astype(np.float32))
        assert labels.dtype == np.uint32 and labels.shape == (64, 64)
