"""Sizing a training run to a time budget (how the shipped model was trained on a lent GPU)."""

import dataclasses

from nucleoflow.schedule import Training, fit_schedule

TRAIN = Training(epochs=5, samples_per_epoch=1, batch_size=4, crop_size=32, learning_rate=1e-3, weight_decay=0.0)


def test_schedule_fills_the_budget_in_whole_batches():
    fitted = fit_schedule(TRAIN, step_s=0.05, budget_s=100, validation_s=2)
    assert fitted.samples_per_epoch % TRAIN.batch_size == 0
    seconds = TRAIN.epochs * (fitted.steps_per_epoch * 0.05 + 2)
    assert 100 - TRAIN.epochs * 0.05 < seconds <= 100  # within one step per epoch of the budget
    assert dataclasses.replace(fitted, samples_per_epoch=1) == TRAIN
