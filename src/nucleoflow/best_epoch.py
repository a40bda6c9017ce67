"""Training's finished model: the epoch whose weights score best on the validation crops.

train.py writes every epoch's weights; here each is scored by validation.py's DSB (the head's
seeded watershed at the head's own validation thresholds) and the best becomes the model. A
step of its own (the workflow's best_epoch rule) because the watershed and the score are not
training's code: editing them scores the saved epochs again, in seconds, and never retrains
them, which takes hours.

One more model is scored beside the epochs: the mean of the weights of the epochs in the second
half of the schedule, where the cosine has brought the learning rate under half its peak
(stochastic weight averaging, Izmailov et al. 2018, with batch-norm statistics recomputed on
training crops). It becomes the model only where it scores higher than every epoch.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, update_bn

from .atomic import atomic_path
from .checkpoint import epoch_files
from .crops import crop_logits, load_split, validation_crops
from .device import pick_device, prepare, torch_threads
from .errors import InputError
from .heads import head_of
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


def tail_epochs(history, planned):
    """The epochs of `history` in the second half of a schedule of `planned` epochs: those whose
    weights are averaged (none where fewer than two, e.g. a run stopped before the middle)."""
    tail = [int(e) for e in history["epoch"] if e > planned / 2]
    return tail if len(tail) >= 2 else []


def averaged_model(files, epochs, bn_crops, device, batch_size):
    """The mean weights of the models in files[epoch] for `epochs`, their batch-norm statistics
    recomputed on bn_crops (averaged weights do not match any epoch's statistics)."""
    models = [load_model(files[epoch])[0] for epoch in epochs]
    average = AveragedModel(models[0])  # a copy: its first update_parameters copies, the rest average
    for model in models:
        average.update_parameters(model)
    model = prepare(average.module, device)
    batches = [torch.from_numpy(np.stack([c[0] for c in bn_crops[i : i + batch_size]])) for i in range(0, len(bn_crops), batch_size)]
    update_bn([b.to(device).contiguous(memory_format=torch.channels_last) for b in batches], model)
    return model


def pick_best(epochs_dir, data_dir, model_path, history_path, threads=1, **extra):
    """Score every epoch in epochs_dir (train's epoch_NNN.pt and history.csv) on the validation
    crops of data_dir, and the mean of the epochs in the schedule's second half; write the best
    as the finished model (its card: the epoch's card, or the last averaged epoch's with
    `averaged_epochs`, its val_dsb and the whole run's training time, plus `extra`) and the
    history with each epoch's val_dsb. Equal scores (a short run may score 0 throughout) go to
    the lower validation loss, and to an epoch rather than the mean. Returns the history."""
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
        tail = tail_epochs(history, train_cfg["epochs"])
        if tail:
            bn_crops = validation_crops(load_split(data_dir, manifest, "train", train_cfg["targets"], head.name), train_cfg["crop_size"], per_side=1)
            average = averaged_model(files, tail, bn_crops, device, train_cfg["batch_size"])
            val_dsb = score_epoch(average, crops, device, train_cfg["batch_size"], head)
            log.info("epochs %d-%d averaged: val_dsb %.4f", tail[0], tail[-1], val_dsb)
            if val_dsb > card["val_dsb"]:
                # The card of the last epoch averaged, less the validation loss no average has.
                model, card = average, {k: v for k, v in load_model(files[tail[-1]])[1].items() if k != "val_loss"}
                card.update(val_dsb=val_dsb, averaged_epochs=tail)
    card["training_time_s"] = round(float(history["seconds"].sum()))
    save_model(model, model_path, **card, **extra)
    with atomic_path(history_path) as tmp:
        history.to_csv(tmp, index=False)
    chosen = f"the mean of epochs {tail[0]}-{tail[-1]}" if "averaged_epochs" in card else f"epoch {epoch}"
    log.info("the best of %d epochs and their tail's mean is %s (val_dsb %.4f): saved to %s", len(history), chosen, card["val_dsb"], model_path)
    return history
