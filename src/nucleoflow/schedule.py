"""The training schedule: its settings (Training: the config's train section), learning rate by
step, sizing to a time budget, and how long it takes. (Training lives here, not in options.py
with the options of inference and postprocessing, so that editing those never retrains.)"""

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

import torch

from .progress import progress

log = logging.getLogger(__name__)
# Steps timed, after a first warm-up step, before the whole schedule's duration is estimated and logged.
PROBE_STEPS = 5
# A CPU run estimated longer than this gets the advice to use config/cpu.yaml.
CPU_ADVICE_S = 3 * 3600


@dataclass(frozen=True)
class Training:
    """The training schedule (config train section); see config/config.yaml for each field."""

    epochs: int = 20
    samples_per_epoch: int = 7056
    batch_size: int = 16
    crop_size: int = 256
    learning_rate: float = 0.002
    weight_decay: float = 0.0001
    modality_balance: float = 0.5
    seed: int = 0
    init_model: str = ""
    targets: str = "inner_boundary"  # targets.KINDS
    border_weight: float = 1.0
    augment: dict = field(default_factory=dict)  # augment.Augmentation's fields; {}: none
    budget_min: float = 0.0  # > 0: samples_per_epoch fitted so that the run takes this many minutes

    @property
    def steps_per_epoch(self):
        return max(1, self.samples_per_epoch // self.batch_size)

    @property
    def total_steps(self):
        return self.epochs * self.steps_per_epoch


def lr_at(step, total_steps, base_lr, warmup_steps):
    """Linear warm-up then cosine decay; a pure function of the step, so resuming needs no state."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    done = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * done))


def fit_schedule(training, step_s, budget_s, validation_s):
    """`training` with samples_per_epoch set so that its epochs take about budget_s at step_s
    seconds per step and validation_s per epoch's validation."""
    steps = max(1, int((budget_s - training.epochs * validation_s) / step_s / training.epochs))
    return dataclasses.replace(training, samples_per_epoch=steps * training.batch_size)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def duration(seconds):
    """'2.5 h', '14 min' or '40 s'."""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class Clock:
    """Progress over a run's training steps: after the first 1 + PROBE_STEPS, the time the whole
    schedule will take on this device; a line with the ETA at least once a minute."""

    def __init__(self, training, done_steps, device):
        self.training, self.device, self.done = training, device, done_steps
        self.bar = progress(total=training.total_steps, initial=done_steps, desc="training steps", unit="step", log=log)
        self.started, self.steps = None, 0

    def step(self):
        self.bar.update(1)
        self.steps += 1
        if self.steps in (1, 1 + PROBE_STEPS):
            synchronize(self.device)
            if self.started is None:
                self.started = time.monotonic()  # after the first step: allocation and autotuning are done
            else:
                self._estimate((time.monotonic() - self.started) / PROBE_STEPS)

    def _estimate(self, step_s):
        training = self.training
        total, left = training.total_steps * step_s, (training.total_steps - self.done) * step_s
        shape = f"{training.epochs} epochs x {training.steps_per_epoch} steps of {training.batch_size} crops"
        log.info(
            "%.2f s per step on %s: the whole schedule (%s) takes about %s, %s of it still to run (validation not counted)",
            step_s, self.device.type, shape, duration(total), duration(left),
        )  # fmt: skip
        if self.device.type == "cpu" and total > CPU_ADVICE_S:
            log.warning(
                "this schedule is sized for a GPU: on this CPU it takes about %s. config/cpu.yaml holds a CPU-sized one "
                "(snakemake --configfile config/cpu.yaml), or train on a GPU",
                duration(total),
            )

    def close(self):
        self.bar.close()
