"""Training's finished model: the epoch whose weights score best on the validation crops.

train.py writes every epoch's weights; here each is scored by validation.py's DSB (the head's
seeded watershed at the head's own validation thresholds) and the best becomes the model. A
step of its own (the workflow's best_epoch rule) because the watershed and the score are not
training's code: editing them scores the saved epochs again, in seconds, and never retrains
them, which takes hours.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .atomic import atomic_path
from .checkpoint import epoch_files
from .crops import crop_logits, load_split, validation_crops
from .device import pick_device, prepare, torch_threads
from .errors import InputError
from .heads import head_of
from .lineage import with_own
from .model import load_model, save_model
from .progress import progress
from .validation import validation_dsb

log = logging.getLogger(__name__)


def score_epoch(model, crops, device, batch_size, head):
    """Mean validation DSB of a model over the validation crops."""
    scores = []
    for logits, chunk in crop_logits(model, crops, device, batch_size):
        for maps, (_, _, labels) in zip(head.activation(logits).cpu().numpy(), chunk):
            scores.append(validation_dsb(labels, maps, head))
    return float(np.mean(scores))


def pick_best(epochs_dir, data_dir, model_path, history_path, threads=1, **extra):
    """Score every epoch in epochs_dir (train's epoch_NNN.pt and history.csv) on the validation
    crops of data_dir; write the best epoch's weights as the finished model (its card: the
    epoch's card, its val_dsb and the whole run's training time, plus `extra`) and the history
    with each epoch's val_dsb. Equal scores (a short run may score 0 throughout) go to the lower
    validation loss. Returns the history."""
    epochs_dir = Path(epochs_dir)
    history = pd.read_csv(epochs_dir / "history.csv")
    files = epoch_files(epochs_dir)
    missing = sorted(set(history["epoch"]) - set(files))
    if missing:
        raise InputError(epochs_dir, f"lacks the weights of epochs {missing} of its history.csv", "Train again: delete the folder and rerun")
    device = pick_device()
    # Building each network draws its initial weights: the caller's random state is kept.
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        first, card = load_model(files[history["epoch"].iloc[0]])
        head, train_cfg = head_of(first.config), card["train"]
        manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
        crops = validation_crops(load_split(data_dir, manifest, "val", train_cfg["targets"], head.name), train_cfg["crop_size"])
        scored = []
        for epoch in progress(list(history["epoch"]), desc="scoring epochs", unit="epoch", log=log):
            model, _ = load_model(files[epoch])
            scored.append(score_epoch(prepare(model, device), crops, device, train_cfg["batch_size"], head))
            log.info("epoch %d val_dsb %.4f", epoch, scored[-1])
        history["val_dsb"] = scored
        best = max(range(len(history)), key=lambda i: (history["val_dsb"].iloc[i], -history["val_loss"].iloc[i]))
        epoch = int(history["epoch"].iloc[best])
        model, card = load_model(files[epoch])
    card = dict(card, val_dsb=float(history["val_dsb"].iloc[best]))
    card["training_time_s"] = round(float(history["seconds"].sum()))
    if card.get("lineage"):  # the model's own round: every epoch it ran, not only those up to the best
        card["lineage"] = with_own(card["lineage"], card["train"]["samples_per_epoch"] * len(history), card["training_time_s"])
    save_model(model, model_path, **card, **extra)
    with atomic_path(history_path) as tmp:
        history.to_csv(tmp, index=False)
    log.info("the best of %d epochs is epoch %d (val_dsb %.4f): saved to %s", len(history), epoch, card["val_dsb"], model_path)
    return history
