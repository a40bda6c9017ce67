"""One optimisation step on a head's loss (head.py), and the check that training has not diverged."""

import torch

from .device import autocast
from .errors import TrainingDiverged

# On a GPU the loss is checked every this many steps (a check waits for the device's queue).
FINITE_CHECK_STEPS = 16


def train_step(net, optimizer, images, targets, device, loss_fn):
    """Forward (bf16 autocast on CUDA), loss_fn(logits, targets) in fp32, backward, update;
    returns the loss tensor."""
    with autocast(device):
        logits = net(images)
    loss = loss_fn(logits.float(), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def check_finite(running_loss, model, epoch, step):
    """Stop training the moment the loss (summed over the epoch so far) or a weight is NaN or
    infinite, before anything is checkpointed or saved from it."""
    if bool(torch.isfinite(running_loss)) and all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    what = "loss" if not bool(torch.isfinite(running_loss)) else "model weights"
    raise TrainingDiverged(
        f"training stopped at epoch {epoch}, step {step + 1}: the {what} became NaN or infinite. "
        "Lower train.learning_rate, or check the training images and labels (results/data; preprocess "
        "warns about NaN pixels); the checkpoint keeps the epochs before"
    )
