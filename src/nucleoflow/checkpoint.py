"""Training state on disk: a checkpoint after every epoch (resumable exactly) and the best model."""

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import torch

from .atomic import atomic_path
from .model import save_model
from .shipped import model_path

log = logging.getLogger(__name__)


def fingerprint(data_dir, model_cfg, training):
    """What a checkpoint must match to be resumed: the data, the model, the schedule and the
    weights it started from."""
    digest = hashlib.sha256(json.dumps([model_cfg, dataclasses.asdict(training)], sort_keys=True).encode())
    digest.update((Path(data_dir) / "manifest.csv").read_bytes())
    if training.init_model:
        digest.update(model_path(training.init_model).read_bytes())
    return digest.hexdigest()


def load_checkpoint(path, expected, remove_stale=True):
    """The saved training state if its fingerprint is `expected`, else None (a stale one is removed)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a checkpoint is only a cache: never fail the job on it
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        state = None
    if state is None or state.get("fingerprint") != expected:
        if remove_stale:
            if state is not None:
                log.info("discarding checkpoint %s: data or training config changed", path)
            path.unlink()
        return None
    return state


def save_checkpoint(path, state):
    """Write the training state ({fingerprint, epoch, model, optimizer, history, best}) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_best(model, best, history, path, device, processes, training, **extra):
    """Write the best epoch's weights as the finished model; its card holds the epoch's scores,
    the device, the schedule and the time spent in epochs (summed over resumed runs too)."""
    model.load_state_dict(best["state"])
    metadata = {k: v for k, v in best.items() if k != "state"}
    training_time_s = round(sum(row["seconds"] for row in history))
    card = dict(metadata, device=str(device), processes=processes, train=dataclasses.asdict(training), training_time_s=training_time_s)
    save_model(model, path, **card, **extra)
