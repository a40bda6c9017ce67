"""The training loss, and one optimisation step on it."""

import torch
import torch.nn.functional as F

from .device import autocast
from .errors import TrainingDiverged
from .targets import N_CLASSES

# On a GPU the loss is checked every this many steps (a check waits for the device's queue).
FINITE_CHECK_STEPS = 16


def loss_fn(logits, target, border_weight=1.0):
    """Cross-entropy (its border class weighted by border_weight, as the U-Net paper and the
    DSB2018 winners weight the pixels between nuclei) plus soft Dice over interior and border."""
    weight = torch.tensor([1.0, 1.0, border_weight], device=logits.device) if border_weight != 1.0 else None
    ce = F.cross_entropy(logits, target, weight=weight)
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, N_CLASSES).permute(0, 3, 1, 2).float()
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    dice = (2 * inter + 1) / (probs.sum(dims) + onehot.sum(dims) + 1)
    return ce + (1 - dice[1:]).mean()


def train_step(net, optimizer, images, targets, device, border_weight=1.0):
    """Forward (bf16 autocast on CUDA), loss in fp32, backward, update; returns the loss tensor."""
    with autocast(device):
        logits = net(images)
    loss = loss_fn(logits.float(), targets, border_weight)
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
