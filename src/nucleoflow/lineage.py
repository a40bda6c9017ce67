"""A model's lineage: every training round from fresh weights to it, each with its data, recipe,
device, crops seen and time. A fine-tuned model's card carries the rounds of its train.init_model
before its own, so a model trained over several rounds (on other machines, in other sessions)
still says how it came to be once the files it started from are gone.
"""

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd

from .shipped import model_path, shipped_models


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def this_round(data_dir, training, device, processes, crops, seconds):
    """The entry of a round that trains `training` (schedule.Training) on data_dir."""
    init = training.init_model or None
    manifest = Path(data_dir) / "manifest.csv"
    recipe = {key: value for key, value in dataclasses.asdict(training).items() if key != "init_model"}
    return {
        "init_model": init,
        "init_sha256": _sha256(model_path(init)) if init else None,
        "data": {"manifest_sha256": _sha256(manifest), "images": pd.read_csv(manifest)["split"].value_counts().to_dict()},
        "recipe": recipe,
        "device": device,
        "processes": processes,
        "crops": crops,
        "training_time_s": round(seconds),
    }


def inherited(init_model):
    """The rounds behind a model.pt (or a shipped model's name): its card's lineage; for a card
    written before cards kept one, its own round read from the card, after the rounds of the
    model it started from where that file can still be found."""
    if not init_model:
        return []
    from .model import load_model  # torch only here: the report step reads lineages from model.json without it

    path = model_path(init_model)
    _, card = load_model(path)
    if "lineage" in card:
        return card["lineage"]
    train = dict(card.get("train", {}))
    parent = train.pop("init_model", "") or None
    found = parent and (parent in shipped_models() or Path(parent).exists())
    epochs = card.get("stopped_after_epoch") or train.get("epochs", 0)
    entry = {
        "model": init_model if init_model in shipped_models() else path.name,
        "sha256": _sha256(path),
        "init_model": parent,
        "data": card.get("data"),
        "recipe": train,
        "device": card.get("device"),
        "processes": card.get("processes", 1),
        "crops": train.get("samples_per_epoch", 0) * epochs,
        "training_time_s": card.get("training_time_s"),
    }
    return [*(inherited(parent) if found else []), entry]


def numbered(rounds):
    """The rounds with their place in the lineage (1: trained from fresh weights, as far as known)."""
    return [{"round": number, **{k: v for k, v in entry.items() if k != "round"}} for number, entry in enumerate(rounds, 1)]


def summary(rounds):
    """One line per round, for reports and model cards read by people."""
    lines = []
    for entry in rounds:
        start = entry.get("init_model") or "fresh weights"
        device = f"{entry['device']} x {entry['processes']}"
        lines.append(f"round {entry['round']}: {start} + {entry['crops']:,} crops on {device}, {entry['training_time_s']} s")
    return lines
