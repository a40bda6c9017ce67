"""One source of truth: option defaults, thresholds and how an image looks are decided once."""

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT

from nucleoflow.appearance import appearance, pixel_sample
from nucleoflow.decode import decode_image
from nucleoflow.normalize import normalize
from nucleoflow.options import SPLIT_ABOVE_MP, Thresholds, ThresholdSet, Tiling
from nucleoflow.package import package_model, tuned_model
from nucleoflow.reader import to_hwc
from nucleoflow.shipped import model_path

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_config_defaults_are_the_library_defaults():
    assert Tiling.from_config(CONFIG["predict"], CONFIG["segment"]) == Tiling()
    assert CONFIG["segment"]["split_above_mp"] == SPLIT_ABOVE_MP
    assert Thresholds(**{k: v for k, v in CONFIG["postprocess"].items() if k != "tune"}) == Thresholds()


def test_options_are_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Tiling().tile = 256
    with pytest.raises(ValueError, match="context"):
        Tiling(block=128, context=128)


@pytest.mark.parametrize(
    "pixels, modality",
    [
        ([[20, 20, 20], [200, 200, 200]], "fluorescence"),  # gray, dark background
        ([[200, 200, 200], [20, 20, 20]], "brightfield"),  # gray, bright background
        ([[240, 200, 230], [90, 40, 140]], "histology"),  # stained, bright background
        ([[10, 10, 30], [60, 200, 120]], "fluorescence"),  # coloured but dark background: not histology
    ],
)
def test_modality_and_polarity_agree(pixels, modality):
    """Background on 90% of the image, nuclei on the rest: the image is inverted exactly when its
    modality is one with a bright background."""
    background, nucleus = (np.array(p, np.uint8) for p in pixels)
    image = np.broadcast_to(background, (100, 100, 3)).copy()
    image[::10, ::10] = image[5::10, ::10] = image[::10, 5::10] = nucleus
    look = appearance(pixel_sample(image))
    assert look.modality == modality
    assert look.bright_background == (modality != "fluorescence")
    x = normalize(image)
    assert x[:, 0, 0].mean() > x[:, 1, 1].mean()  # nuclei come out bright either way


def test_committed_crops_keep_their_recorded_modality(crops_zip):
    """The crops' modalities (recorded from the full images at preprocess) are told again from
    the crops' own pixels, by the statistics the normaliser uses."""
    recorded = pd.read_csv(crops_zip.parent / "crops.csv").set_index("stem")["modality"]
    with zipfile.ZipFile(crops_zip) as archive:
        for name in archive.namelist():
            if name.startswith("images/"):
                stem = Path(name).stem
                look = appearance(pixel_sample(to_hwc(decode_image(archive.read(name), name), name)))
                assert look.modality == recorded[stem], stem


def test_threshold_sets_round_trip_and_override():
    histology = {"seed_threshold": 0.6, "foreground_threshold": 0.4, "min_seed_area": 16, "min_area": 5}
    tuned = {"seed_threshold": 0.8, "foreground_threshold": 0.7, "min_seed_area": 8, "min_area": 5, "modality": {"histology": histology}}
    chosen = ThresholdSet.from_json(tuned, tuned_on="val")
    assert chosen.to_json() == tuned
    assert chosen.for_modality("histology").foreground_threshold == 0.4
    assert chosen.for_modality("brightfield") == chosen.default
    overridden = chosen.with_overrides(min_area=20)
    assert {overridden.for_modality(m).min_area for m in ("histology", "fluorescence")} == {20}
    assert overridden.tuned_on is None and overridden.for_modality("histology").seed_threshold == 0.6


def test_package_records_untuned_thresholds_as_given(tmp_path):
    """postprocess.tune: false packages the configured thresholds and says they were not tuned
    (it used to take results/tune/thresholds.json and claim tuning on val)."""
    fixed = {"seed_threshold": 0.6, "foreground_threshold": 0.5, "min_seed_area": 4, "min_area": 10}
    summary = {"split": "test", "modality": "all", "n_images": 3, "dsb": 0.5, "ap_0.50": 0.7, "ap_pooled_0.50": 0.7}
    pd.DataFrame([summary]).to_csv(tmp_path / "summary.csv", index=False)
    tuned_model(model_path("dsb2018_unet"), ThresholdSet.for_workflow(fixed, []), tmp_path / "tuned.pt")
    card = package_model(tmp_path / "tuned.pt", tmp_path / "summary.csv", tmp_path / "out", {}, {})
    written = json.loads((tmp_path / "out" / "model.json").read_text())
    assert card["postprocess"] == written["postprocess"] == fixed
    assert written["postprocess_tuned_on"] is None
    (tmp_path / "tuned.json").write_text(json.dumps(fixed))
    assert ThresholdSet.for_workflow({}, str(tmp_path / "tuned.json")).tuned_on == "val"
