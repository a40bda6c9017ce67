"""The training loop: epochs of random augmented crops, a validation loss, checkpoints, and every
epoch's weights; best_epoch.py then picks the epoch that is the finished model.

Its parts live beside it: crops (data, crops, batches) with augment (zoom and colour
augmentation), head (what the network predicts: targets, loss; heads registers them), loss (the
optimisation step), schedule (the train config, learning rate, budget, ETA), checkpoint
(resumable state, the epochs' weights) and launch (distributed processes). The workflow's train
rule depends on these, the network (model.py) and what they import (deps.py): not on reading
image files (the prepared data are read as written, prepared.py), the watershed, the score that
picks the best epoch (best_epoch rule), postprocessing or evaluation.
"""

import contextlib
import copy
import dataclasses
import logging
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from .atomic import atomic_path
from .augment import Augmentation
from .checkpoint import epoch_files, fingerprint, load_checkpoint, save_checkpoint, save_epoch
from .crops import crop_logits, load_split, make_batch, resident, sampling_weights, validation_crops
from .device import describe, prepare, seeded, torch_threads
from .errors import InputError
from .head import Head
from .heads import head_of
from .launch import joined, launch
from .lineage import card_round, sha256, this_round, with_own
from .loss import FINITE_CHECK_STEPS, check_finite, train_step
from .model import build_unet, load_model
from .schedule import PROBE_STEPS, Clock, Training, fit_schedule, lr_at, synchronize
from .shipped import model_path, shipped_models

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """Where a training run reads and writes: the epochs' weights and history.csv go to work_dir
    with the resumable state as they are made, and the finished folder becomes epochs_dir (so a
    workflow's output folder, which Snakemake empties before a job reruns, never loses epochs a
    resumed run needs)."""

    data_dir: Path
    epochs_dir: Path
    work_dir: Path
    log_path: str | None = None

    @property
    def checkpoint_path(self):
        return self.work_dir / "state.pt"


@dataclass
class Data:
    train_set: list  # crops.Example (resident on a GPU)
    weights: np.ndarray  # sampling probability of each training example
    val_crops: list  # (image, target, labels) centre crops; rank 0 only
    augmentation: Augmentation
    head: Head
    border_weight: float

    def loss(self, logits, targets):
        """The training loss of the head (train.border_weight on its border class, if it has one)."""
        return self.head.loss(logits, targets, self.border_weight)


@dataclass
class State:
    """What an epoch changes: the model, its optimiser, the history and the best epoch so far."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    history: list
    samples_per_epoch: int | None = None  # fitted to train.budget_min (kept by the checkpoint)
    lineage: list = field(default_factory=list)  # the rounds behind this run, then its own (rank 0; lineage.py)


def train(data_dir, epochs_dir, work_dir, model_cfg, train_cfg, threads=1, processes=1, log_path=None):
    """Train a U-Net; write every epoch's weights (epoch_NNN.pt, each a model file with its card)
    and history.csv (epoch, train_loss, val_loss, lr, seconds) to epochs_dir, for
    best_epoch.pick_best to choose the finished model from. Returns the history.

    train_cfg: a schedule.Training or the config's train section. processes > 1 runs
    DistributedDataParallel (launch.py). The full training state is checkpointed atomically in
    work_dir after every epoch; a rerun with the same data and config resumes from it and ends
    exactly as an uninterrupted run would.
    """
    run = Run(Path(data_dir), Path(epochs_dir), Path(work_dir), log_path)
    training = train_cfg if isinstance(train_cfg, Training) else Training(**train_cfg)
    return pd.DataFrame(launch(processes, _train_process, run, dict(model_cfg), training, max(1, threads // processes)))


def _train_process(run, model_cfg, training, threads):
    """One training process: the whole run, or one rank of a distributed run. Torch's threads
    and random state and the SIGTERM handler are the caller's again afterwards."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(threads))
        rank = stack.enter_context(joined(run.log_path))
        stack.enter_context(seeded(training.seed, rank.device))
        stack.enter_context(_stop_on_sigterm(run.checkpoint_path))
        data = _load_data(run.data_dir, training, rank, head_of(model_cfg))
        expected = fingerprint(run.data_dir, model_cfg, training)
        state = _initial_state(run, model_cfg, training, rank, expected)
        if training.budget_min:
            state.samples_per_epoch = state.samples_per_epoch or _fit_to_budget(state, data, training, rank)
            training = dataclasses.replace(training, samples_per_epoch=state.samples_per_epoch)
        if rank.lead:  # read once: the init_model file may be gone by the last epoch
            state.lineage = [*inherited(training.init_model), this_round(run.data_dir, training, describe(rank.device), rank.world)]
        net = DistributedDataParallel(state.model) if rank.world > 1 else state.model
        clock = Clock(training, len(state.history) * training.steps_per_epoch, rank.device) if rank.lead else None
        for epoch in range(len(state.history) + 1, training.epochs + 1):
            started = time.monotonic()
            train_loss, lr = _train_epoch(net, state.optimizer, data, training, epoch, rank, clock)
            if rank.lead:
                row = {"epoch": epoch, "train_loss": train_loss, "lr": lr, "started": started}
                _end_epoch(state, row, data, training, rank, run, expected)
            rank.barrier()
        if clock:
            clock.close()
        if rank.lead:
            _finish(run)
        return state.history


def _load_data(data_dir, training, rank, head):
    problems = head.training_problems(training.targets, training.border_weight)
    if problems:
        raise ValueError("; ".join(problems))
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    train_set = load_split(data_dir, manifest, "train", training.targets, head.name)
    val_set = load_split(data_dir, manifest, "val", training.targets, head.name) if rank.lead else []
    if not train_set or (rank.lead and not val_set):
        raise ValueError(f"need train and val images, got {len(train_set)} and {len(val_set)}; use more images")
    if rank.lead:
        log.info("device %s x %d; %d training and %d validation images", rank.device, rank.world, len(train_set), len(val_set))
    augmentation = Augmentation.from_config(training.augment)
    weights = sampling_weights(train_set, training.modality_balance)
    if rank.device.type == "cuda":
        train_set = resident(train_set, rank.device, training.crop_size, augmentation)
    return Data(train_set, weights, validation_crops(val_set, training.crop_size), augmentation, head, training.border_weight)


def initial_model(model_cfg, init_model, device):
    """A fresh U-Net, or with init_model (a model.pt of this pipeline) its weights: fine-tuning."""
    model = build_unet(model_cfg)
    if init_model:
        source, _ = load_model(init_model)
        if source.config != model.config:
            raise InputError(
                init_model,
                f"is a U-Net with {source.config}, but the model config asks for {model.config}",
                'Set model.depth, base_width and norm to the values in its model.json, or train.init_model to ""',
            )
        model.load_state_dict(source.state_dict())
    return prepare(model, device)


def inherited(init_model):
    """The rounds behind a model.pt or shipped model (lineage.py): its card's lineage; for a card
    written before cards kept one, its own round after those of the model it started from, where
    that file can still be found."""
    if not init_model:
        return []
    path = model_path(init_model)
    _, card = load_model(path)
    if "lineage" in card:
        return card["lineage"]
    entry = card_round(card, init_model if init_model in shipped_models() else path.name, sha256(path))
    parent = entry["init_model"]
    return [*(inherited(parent) if parent and model_path(parent).exists() else []), entry]


def _initial_state(run, model_cfg, training, rank, expected):
    """A fresh model and optimiser, or those of this run's checkpoint (fingerprint `expected`)."""
    model = initial_model(model_cfg, training.init_model, rank.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
    saved = load_checkpoint(run.checkpoint_path, expected, remove_stale=rank.lead)
    rank.barrier()  # nobody reads the checkpoint while rank 0 may remove it
    if not saved:
        if rank.lead:  # a fresh run: no epochs of another one
            shutil.rmtree(run.work_dir, ignore_errors=True)
            run.work_dir.mkdir(parents=True)
        rank.barrier()
        return State(model, optimizer, [])
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if rank.lead:
        log.info("resumed from epoch %d (%s)", saved["epoch"], run.checkpoint_path)
    return State(model, optimizer, saved["history"], saved.get("samples_per_epoch"))


def _fit_to_budget(state, data, training, rank):
    """samples_per_epoch that fits the run into train.budget_min on this machine: steps on real
    batches (of a copy of the model: the run's own weights and random streams stay untouched)
    and one validation are timed, and what they took is part of the budget. Each epoch's
    validation is counted twice: its loss here, its score when best_epoch picks the epoch."""
    started = time.monotonic()
    model = copy.deepcopy(state.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
    rng = np.random.default_rng([training.seed, 0, rank.rank])  # epochs draw from [seed, epoch >= 1, rank]
    batches = _batches(data, training, rng, 1 + PROBE_STEPS, rank)
    step_s = 0.0
    for step, batch in enumerate(batches):
        timed = time.monotonic()
        train_step(model, optimizer, *batch, rank.device, data.loss)
        synchronize(rank.device)
        step_s += (time.monotonic() - timed) / PROBE_STEPS if step else 0.0
    timed = time.monotonic()
    if rank.lead:
        validation_loss(model, data.val_crops, rank.device, training.batch_size, data.head)
    validation_s = 2 * (time.monotonic() - timed)
    budget_s = training.budget_min * 60 - (time.monotonic() - started)
    samples = fit_schedule(training, step_s, budget_s, validation_s).samples_per_epoch
    if rank.world > 1:  # every rank runs the lead's schedule
        agreed = torch.tensor([samples], device=rank.device)
        torch.distributed.broadcast(agreed, 0)
        samples = int(agreed.item())
    if rank.lead:
        log.info(
            "budget %g min: %.2f s per step of %d crops, %.0f s per validation -> %d epochs x %d crops",
            training.budget_min, step_s, training.batch_size, validation_s, training.epochs, samples,
        )  # fmt: skip
    return samples


def _batches(data, training, rng, steps, rank):
    """`steps` augmented training batches. Made inline: made one ahead in a background thread
    they ran slower on 2 cores (benchmarks/train_speed.py; docs/notebook.md)."""
    local_batch = max(1, training.batch_size // rank.world)  # batch_size is global
    for _ in range(steps):
        picks = rng.choice(len(data.train_set), size=local_batch, p=data.weights)
        yield make_batch(data.train_set, picks, training.crop_size, rng, rank.device, data.augmentation)


def _train_epoch(net, optimizer, data, training, epoch, rank, clock):
    """One epoch of optimisation steps; (mean training loss, last learning rate)."""
    # Per-epoch, per-rank random streams: resuming needs no generator state.
    rng = np.random.default_rng([training.seed, epoch, rank.rank])
    net.train()
    steps = training.steps_per_epoch
    running = torch.zeros((), device=rank.device)
    for step, batch in enumerate(_batches(data, training, rng, steps, rank)):
        lr = lr_at((epoch - 1) * steps + step, training.total_steps, training.learning_rate, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Summed on the device: a .item() per step would stall the GPU queue.
        running += train_step(net, optimizer, *batch, rank.device, data.loss).detach()
        if rank.device.type != "cuda" or step % FINITE_CHECK_STEPS == FINITE_CHECK_STEPS - 1 or step == steps - 1:
            check_finite(running, net, epoch, step)
        if clock:
            clock.step()
    return running.item() / steps, lr


def validation_loss(model, crops, device, batch_size, head):
    """Mean loss (unweighted) of the head over the validation crops."""
    total = 0.0
    for logits, chunk in crop_logits(model, crops, device, batch_size):
        targets = torch.from_numpy(np.stack([c[1] for c in chunk]).astype(np.int64)).to(device)
        total += head.loss(logits, targets).item() * len(chunk)
    return total / len(crops)


def _end_epoch(state, row, data, training, rank, run, expected):
    """Validate, save and log one finished epoch (rank 0); row: its epoch, train_loss, lr and
    start time. Updates state.history."""
    val_loss = validation_loss(state.model, data.val_crops, rank.device, training.batch_size, data.head)
    epoch = row["epoch"]
    entry = {"epoch": epoch, "train_loss": row["train_loss"], "val_loss": val_loss, "lr": row["lr"]}
    entry["seconds"] = time.monotonic() - row["started"]
    state.history.append(entry)
    card = {"val_loss": val_loss, "device": str(rank.device), "processes": rank.world, "train": dataclasses.asdict(training)}
    card["training_time_s"] = round(sum(r["seconds"] for r in state.history))
    card["lineage"] = with_own(state.lineage, training.samples_per_epoch * epoch, card["training_time_s"])
    save_epoch(state.model, run.work_dir, epoch, **card)
    saved = {"epoch": epoch, "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(), "history": state.history}
    if state.samples_per_epoch:
        saved["samples_per_epoch"] = state.samples_per_epoch
    # The state after the epoch's weights: a resumable state always has every epoch before it.
    save_checkpoint(run.checkpoint_path, {"fingerprint": expected, **saved})
    with atomic_path(run.work_dir / "history.csv") as tmp:
        pd.DataFrame(state.history).to_csv(tmp, index=False)
    # Logged after the checkpoint, so a logged epoch is always a resumable one.
    log.info("epoch %d/%d train_loss %.4f val_loss %.4f (%.0f s)", epoch, training.epochs, row["train_loss"], val_loss, entry["seconds"])


def _finish(run):
    """The finished run's epochs and history become epochs_dir (one rename: never half there);
    the resumable state goes, so a forced rerun trains afresh."""
    run.checkpoint_path.unlink()
    shutil.rmtree(run.epochs_dir, ignore_errors=True)
    run.work_dir.rename(run.epochs_dir)
    log.info("saved %d epochs to %s", len(epoch_files(run.epochs_dir)), run.epochs_dir)


@contextlib.contextmanager
def _stop_on_sigterm(checkpoint_path):
    """SLURM's time limit and preemption send SIGTERM: exit cleanly, keeping the checkpoint.
    The caller's handler is back in place afterwards."""

    def handler(signum, frame):
        log.warning("SIGTERM: stopping; rerun the workflow to resume from %s", checkpoint_path)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
