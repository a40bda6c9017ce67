"""Lineage of models whose cards were written before cards kept one (train.inherited)."""

import hashlib

from nucleoflow.model import load_model, save_model
from nucleoflow.shipped import model_path
from nucleoflow.train import inherited


def test_the_shipped_model_is_one_round_read_from_its_card():
    _, card = load_model("dsb2018_unet")
    [entry] = inherited("dsb2018_unet")
    assert entry["model"] == "dsb2018_unet" and entry["init_model"] is None
    assert entry["sha256"] == hashlib.sha256(model_path("dsb2018_unet").read_bytes()).hexdigest()
    assert entry["crops"] == card["train"]["samples_per_epoch"] * card["train"]["epochs"] == 141120
    assert entry["device"] == card["device"] and entry["data"]["url"] == card["data"]["url"]


def test_a_card_without_lineage_goes_back_through_the_files_that_still_exist(tmp_path):
    """A model fine-tuned from the shipped one lists the shipped round first; one whose start
    file is gone names that file and stops there."""
    model, card = load_model("dsb2018_unet")
    base = {key: card[key] for key in ("device", "processes", "training_time_s")}
    chained, orphan = tmp_path / "chained.pt", tmp_path / "orphan.pt"
    save_model(model, chained, **base, train={**card["train"], "epochs": 2, "init_model": "dsb2018_unet"})
    save_model(model, orphan, **base, train={**card["train"], "init_model": str(tmp_path / "gone.pt")}, stopped_after_epoch=3)
    shipped, own = inherited(str(chained))
    assert shipped["model"] == "dsb2018_unet" and own["model"] == "chained.pt" and own["init_model"] == "dsb2018_unet"
    assert own["crops"] == card["train"]["samples_per_epoch"] * 2
    [entry] = inherited(str(orphan))
    assert entry["init_model"] == str(tmp_path / "gone.pt") and entry["crops"] == card["train"]["samples_per_epoch"] * 3


def test_a_fresh_model_has_no_rounds_behind_it():
    assert inherited("") == [] and inherited(None) == []
