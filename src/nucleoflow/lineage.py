"""A model's lineage: every training round from fresh weights to it, each with its data, recipe,
device, crops seen and time. A fine-tuned model's card carries the rounds of its train.init_model
before its own, so a model trained over several rounds (on other machines, in other sessions)
still says how it came to be once the files it started from are gone.
"""

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd

from .shipped import model_path


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def this_round(data_dir, training, device, processes):
    """The entry of a round that trains `training` (schedule.Training) on data_dir; its crops and
    training_time_s are added as its epochs end."""
    init = training.init_model or None
    manifest = Path(data_dir) / "manifest.csv"
    recipe = {key: value for key, value in dataclasses.asdict(training).items() if key != "init_model"}
    return {
        "init_model": init,
        "init_sha256": sha256(model_path(init)) if init else None,
        "data": {"manifest_sha256": sha256(manifest), "images": pd.read_csv(manifest)["split"].value_counts().to_dict()},
        "recipe": recipe,
        "device": device,
        "processes": processes,
    }


def card_round(card, name, digest):
    """The round of a model whose card was written before cards kept a lineage, read from the
    card (name: the shipped model's name or the file's; digest: the file's sha256)."""
    train = dict(card.get("train", {}))
    epochs = card.get("stopped_after_epoch") or train.get("epochs", 0)
    return {
        "model": name,
        "sha256": digest,
        "init_model": train.pop("init_model", "") or None,
        "data": card.get("data"),
        "recipe": train,
        "device": card.get("device"),
        "processes": card.get("processes", 1),
        "crops": train.get("samples_per_epoch", 0) * epochs,
        "training_time_s": card.get("training_time_s"),
    }


def with_own(rounds, crops, seconds):
    """rounds (the last one a run's own) numbered, the run's own with the crops and training
    time it has reached."""
    return numbered([*rounds[:-1], {**rounds[-1], "crops": crops, "training_time_s": seconds}])


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
