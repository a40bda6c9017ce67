"""Training state on disk: a checkpoint after every epoch (resumable exactly) and every epoch's weights."""

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


def save_epoch(model, folder, epoch, **card):
    """Write one epoch's weights as a model file, folder/epoch_NNN.pt, with its card (the epoch,
    its validation loss, the device, the schedule, the training time so far)."""
    save_model(model, Path(folder) / f"epoch_{epoch:03d}.pt", epoch=epoch, **card)


def epoch_files(folder):
    """{epoch: path} of the epoch_NNN.pt files in a folder of train's epochs."""
    return {int(p.stem.split("_")[1]): p for p in sorted(Path(folder).glob("epoch_*.pt"))}
