"""Training loop: random crops with dihedral and intensity augmentation, CE + soft Dice."""

import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .augment import Augmentation, colour_jitter, crop_window, zoom_to
from .device import autocast, pick_device, prepare
from .errors import InputError
from .io import atomic_path, load_hwc, setup_logging
from .metrics import image_scores
from .model import UNet, load_model, save_model
from .normalize import normalize
from .postprocess import instances
from .shipped import model_path
from .targets import N_CLASSES, make_targets

log = logging.getLogger(__name__)
NO_AUGMENTATION = Augmentation.from_config(None)


@dataclass
class Example:
    id: str
    modality: str
    image: np.ndarray  # normalised float32 (3, H, W)
    target: np.ndarray  # uint8 classes (H, W)
    labels: np.ndarray  # instance ids (H, W)
    # Where the original image starts in `image`, and its (H, W): `resident` examples are padded
    # once, up front, so that crops are plain slices on the device.
    origin: tuple = (0, 0)
    shape: tuple = None


def load_split(data_dir, manifest, split, targets="inner_boundary"):
    """The images of one split, normalised, with their `targets` kind (targets.KINDS)."""
    examples = []
    for row in manifest[manifest["split"] == split].itertuples():
        labels = tifffile.imread(Path(data_dir) / row.labels)
        image = normalize(load_hwc(Path(data_dir) / row.image))
        examples.append(Example(row.id, row.modality, image, make_targets(labels, targets), labels))
    return examples


def _pad_to(array, size):
    """Reflect-pad the last two axes up to at least `size`."""
    pad_h, pad_w = max(size - array.shape[-2], 0), max(size - array.shape[-1], 0)
    if not (pad_h or pad_w):
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)]
    return np.pad(array, widths, mode="symmetric")


def random_crop(example, size, rng, aug=NO_AUGMENTATION):
    """A random window that becomes a size x size crop: larger or smaller than that when zoom
    augmentation draws another scale (make_batch resizes it on the device)."""
    height, width = crop_window(size, aug.zoom, aug.aspect, rng)
    side = max(height, width)
    h, w = example.shape or example.image.shape[-2:]
    padded_h, padded_w = max(h, side), max(w, side)  # the image after _pad_to(image, side)
    y = rng.integers(0, padded_h - height + 1)
    x = rng.integers(0, padded_w - width + 1)
    image, target, (oy, ox) = example.image, example.target, example.origin
    if image.shape[-2] < padded_h or image.shape[-1] < padded_w:
        image, target = _pad_to(image, side), _pad_to(target, side)
        oy, ox = (padded_h - h) // 2, (padded_w - w) // 2
    # Symmetric padding gives the same pixels at the same offsets from the original, however
    # far it pads: a pre-padded image yields the crop the numpy path would.
    y += oy - (padded_h - h) // 2
    x += ox - (padded_w - w) // 2
    return image[:, y : y + height, x : x + width], target[y : y + height, x : x + width]


def augment(images, targets, rng, colour=(), aug=NO_AUGMENTATION):
    """Per-crop colour jitter (augment.py), dihedral transform, channel shuffle (stain colour),
    contrast/brightness/gamma jitter; colour: per crop, whether it comes from a colour image.

    Runs on the training device: on a GPU the Python loop here is the step's only CPU work.
    """
    images = colour_jitter(images, colour or [False] * len(images), aug, rng)
    out_images, out_targets = [], []
    for image, target in zip(images, targets):
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        image, target = torch.rot90(image, k, (1, 2)), torch.rot90(target, k, (0, 1))
        if flip:
            image, target = image.flip(2), target.flip(1)
        out_images.append(image[torch.from_numpy(rng.permutation(3))])
        out_targets.append(target)
    n = len(images)
    gamma, gain, bias = (
        torch.from_numpy(v.astype(np.float32)).to(images.device).view(n, 1, 1, 1)
        for v in (np.exp(rng.uniform(-0.3, 0.3, n)), rng.uniform(0.7, 1.3, n), rng.uniform(-0.1, 0.1, n))
    )
    images = torch.stack(out_images).clamp(min=0) ** gamma * gain + bias
    return images.contiguous(memory_format=torch.channels_last), torch.stack(out_targets)


def resident(examples, device, size, aug):
    """The examples with image and target as tensors on `device`, padded once to the largest
    crop window: crops are then cut, zoomed and augmented there, without a copy from the host per
    step (on a GPU, the host loop was the bottleneck of training)."""
    window = round(size / (aug.zoom[0] * np.exp(-aug.aspect / 2))) + 1
    out = []
    for e in examples:
        h, w = e.image.shape[-2:]
        image, target = _pad_to(e.image, window), _pad_to(e.target, window)
        origin = ((image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2)
        out.append(
            dataclasses.replace(
                e,
                image=torch.from_numpy(image).to(device),
                target=torch.from_numpy(target.astype(np.int64)).to(device),
                origin=origin,
                shape=(h, w),
            )
        )
    return out


def make_batch(examples, picks, size, rng, device, aug=NO_AUGMENTATION):
    """Random crops of the picked examples (numpy or `resident` ones), on the device, zoomed and
    augmented there."""
    crops = [random_crop(examples[i], size, rng, aug) for i in picks]
    pairs = [zoom_to(torch.as_tensor(image).to(device), torch.as_tensor(target).to(device).long(), size) for image, target in crops]
    images, targets = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    return augment(images, targets, rng, [examples[i].modality == "histology" for i in picks], aug)


def train_step(net, optimizer, images, targets, device, border_weight=1.0):
    with autocast(device):
        logits = net(images)
    loss = loss_fn(logits.float(), targets, border_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def seconds_per_step(model_cfg, train_cfg, device, steps=20):
    """Wall time of one training step (batch, augmentation, forward, backward, update) on random
    data, after warm-up: sizes a schedule to a time budget on an unknown machine."""
    size = train_cfg["crop_size"]
    rng = np.random.default_rng(0)
    example = Example(
        "probe", "probe", rng.random((3, 2 * size, 2 * size), dtype=np.float32), rng.integers(0, N_CLASSES, (2 * size, 2 * size)).astype(np.uint8), None
    )
    model = prepare(UNet(n_classes=N_CLASSES, **model_cfg), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    picks = [0] * train_cfg["batch_size"]
    for step in range(steps + 3):
        if step == 3:
            _synchronize(device)
            start = time.perf_counter()
        loss = train_step(model, optimizer, *make_batch([example], picks, size, rng, device), device)
    loss.item()
    return (time.perf_counter() - start) / steps


def fit_schedule(train_cfg, step_s, budget_s, validation_s):
    """train_cfg with samples_per_epoch set so that its epochs take about budget_s at step_s
    seconds per step and validation_s per epoch's validation."""
    epochs = train_cfg["epochs"]
    steps = max(1, int((budget_s - epochs * validation_s) / step_s / epochs))
    return {**train_cfg, "samples_per_epoch": steps * train_cfg["batch_size"]}


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def sampling_weights(examples, balance):
    """Weight each image by 1 / count(modality)**balance: 0 = uniform, 1 = equal per modality."""
    counts = pd.Series([e.modality for e in examples]).value_counts()
    weights = np.array([1.0 / counts[e.modality] ** balance for e in examples])
    return weights / weights.sum()


def validation_crops(examples, size):
    """One fixed centre crop per validation image, so epochs are compared on the same pixels."""
    crops = []
    for e in examples:
        image, target, labels = _pad_to(e.image, size), _pad_to(e.target, size), _pad_to(e.labels, size)
        y, x = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
        crops.append((image[:, y : y + size, x : x + size], target[y : y + size, x : x + size], labels[y : y + size, x : x + size]))
    return crops


@torch.no_grad()
def evaluate(model, crops, device, batch_size):
    model.eval()
    losses, scores = [], []
    for i in range(0, len(crops), batch_size):
        chunk = crops[i : i + batch_size]
        images = torch.from_numpy(np.stack([c[0] for c in chunk])).to(device).contiguous(memory_format=torch.channels_last)
        targets = torch.from_numpy(np.stack([c[1] for c in chunk]).astype(np.int64)).to(device)
        with autocast(device):
            logits = model(images)
        logits = logits.float()
        losses.append(loss_fn(logits, targets).item() * len(chunk))
        for probs, (_, _, labels) in zip(torch.softmax(logits, 1).cpu().numpy(), chunk):
            scores.append(image_scores(labels, instances(probs))["dsb"])
    return sum(losses) / len(crops), float(np.mean(scores))


def lr_at(step, total_steps, base_lr, warmup_steps):
    """Linear warm-up then cosine decay; a pure function of the step, so resuming needs no state."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def initial_model(model_cfg, init_model, device):
    """A fresh U-Net, or with init_model (a model.pt of this pipeline) its weights: fine-tuning."""
    model = UNet(n_classes=N_CLASSES, **model_cfg)
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


def _fingerprint(data_dir, model_cfg, train_cfg):
    """What a checkpoint must match to be resumed: the data, the model, the schedule and the
    weights it started from."""
    digest = hashlib.sha256(json.dumps([model_cfg, train_cfg], sort_keys=True).encode())
    digest.update((Path(data_dir) / "manifest.csv").read_bytes())
    if train_cfg.get("init_model"):
        digest.update(model_path(train_cfg["init_model"]).read_bytes())
    return digest.hexdigest()


def _load_checkpoint(path, fingerprint, remove_stale=True):
    """The saved training state if it belongs to this run, else None (a stale one is removed)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a checkpoint is only a cache: never fail the job on it
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        state = None
    if state is None or state.get("fingerprint") != fingerprint:
        if remove_stale:
            if state is not None:
                log.info("discarding checkpoint %s: data or training config changed", path)
            path.unlink()
        return None
    return state


def _stop_on_sigterm(checkpoint_path):
    """SLURM's time limit and preemption send SIGTERM: exit cleanly, keeping the checkpoint."""

    def handler(signum, frame):
        log.warning("SIGTERM: stopping; rerun the workflow to resume from %s", checkpoint_path)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def train(data_dir, model_path, history_path, checkpoint_path, model_cfg, train_cfg, threads=1, processes=1, log_path=None):
    """Train a U-Net; keep the best model on the validation DSB score.

    processes > 1 runs DistributedDataParallel through torchrun's launcher (NCCL on GPUs,
    one per process; gloo on CPUs). The full training state is checkpointed atomically after
    every epoch; a rerun with the same data and config resumes from it and ends exactly as an
    uninterrupted run would. The validation score uses the default postprocess thresholds,
    so tuning those never retrains the network.
    """
    args = (data_dir, model_path, history_path, checkpoint_path, model_cfg, train_cfg, max(1, threads // processes), log_path)
    if processes == 1:
        return pd.DataFrame(_train_process(*args))
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=f"nucleoflow-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=1,
    )
    return pd.DataFrame(elastic_launch(launch, _train_process)(*args)[0])


def _train_process(data_dir, model_path, history_path, checkpoint_path, model_cfg, train_cfg, threads, log_path):
    """One training process: the whole run, or one rank of a distributed run."""
    torch.set_num_threads(threads)
    torch.manual_seed(train_cfg["seed"])
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = pick_device()
    if world > 1:
        if log_path and rank == 0:  # spawned ranks start with no logging set up
            setup_logging(log_path, mode="a")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    lead = rank == 0
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    kind, aug = train_cfg.get("targets", "inner_boundary"), Augmentation.from_config(train_cfg.get("augment"))
    train_set = load_split(data_dir, manifest, "train", kind)
    val_set = load_split(data_dir, manifest, "val", kind) if lead else []
    if not train_set or (lead and not val_set):
        raise ValueError(f"need train and val images, got {len(train_set)} and {len(val_set)}; use more images")
    if lead:
        log.info("device %s x %d; %d training and %d validation images", device, world, len(train_set), len(val_set))
    size, batch_size, epochs = train_cfg["crop_size"], train_cfg["batch_size"], train_cfg["epochs"]
    weights = sampling_weights(train_set, train_cfg["modality_balance"])
    if device.type == "cuda":
        train_set = resident(train_set, device, size, aug)
    val_crops = validation_crops(val_set, size)

    model = initial_model(model_cfg, train_cfg.get("init_model"), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg["learning_rate"], weight_decay=train_cfg["weight_decay"])
    # samples_per_epoch and batch_size are global: each of the `world` ranks takes its share.
    steps_per_epoch = max(1, train_cfg["samples_per_epoch"] // batch_size)
    local_batch = max(1, batch_size // world)
    total_steps = epochs * steps_per_epoch
    fingerprint = _fingerprint(data_dir, model_cfg, train_cfg)
    state = _load_checkpoint(checkpoint_path, fingerprint, remove_stale=lead)
    if world > 1:
        dist.barrier()  # nobody reads the checkpoint while rank 0 may remove it
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best = state["history"], state["best"]
        if lead:
            log.info("resumed from epoch %d (%s)", state["epoch"], checkpoint_path)
    else:
        history, best = [], {"val_dsb": -1.0}
    net = DistributedDataParallel(model) if world > 1 else model
    _stop_on_sigterm(checkpoint_path)
    for epoch in range(len(history) + 1, epochs + 1):
        # Per-epoch, per-rank random streams: resuming needs no generator state.
        rng = np.random.default_rng([train_cfg["seed"], epoch, rank])
        net.train()
        started, running = time.monotonic(), torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            lr = lr_at((epoch - 1) * steps_per_epoch + step, total_steps, train_cfg["learning_rate"], steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            picks = rng.choice(len(train_set), size=local_batch, p=weights)
            # Summed on the device: a .item() per step would stall the GPU queue.
            batch = make_batch(train_set, picks, size, rng, device, aug)
            running += train_step(net, optimizer, *batch, device, train_cfg.get("border_weight", 1.0)).detach()
        if lead:
            best = _end_epoch(
                model,
                optimizer,
                val_crops,
                device,
                batch_size,
                epoch,
                epochs,
                running.item() / steps_per_epoch,
                lr,
                started,
                history,
                best,
                fingerprint,
                checkpoint_path,
                history_path,
            )
        if world > 1:
            dist.barrier()
    if lead:
        save_best(model, best, history, model_path, device, world, train_cfg)
        log.info("saved the best model (epoch %d, val_dsb %.4f) to %s", best["epoch"], best["val_dsb"], model_path)
        Path(checkpoint_path).unlink()  # finished: a forced rerun trains afresh
    if world > 1:
        dist.destroy_process_group()
    return history


def save_best(model, best, history, model_path, device, processes, train_cfg, **extra):
    """Write the best epoch's weights as the finished model; its card holds the epoch's scores,
    the device, the schedule and the time spent in epochs (summed over resumed runs too)."""
    model.load_state_dict(best["state"])
    metadata = {k: v for k, v in best.items() if k != "state"}
    training_time_s = round(sum(row["seconds"] for row in history))
    save_model(model, model_path, **metadata, device=str(device), processes=processes, train=train_cfg, training_time_s=training_time_s, **extra)


def _end_epoch(
    model, optimizer, val_crops, device, batch_size, epoch, epochs, train_loss, lr, started, history, best, fingerprint, checkpoint_path, history_path
):
    """Validate, checkpoint and log one finished epoch (rank 0); returns the best so far."""
    val_loss, val_dsb = evaluate(model, val_crops, device, batch_size)
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dsb": val_dsb, "lr": lr}
    row["seconds"] = time.monotonic() - started
    history.append(row)
    if val_dsb > best["val_dsb"]:
        weights_copy = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        best = {"epoch": epoch, "val_dsb": val_dsb, "val_loss": val_loss, "state": weights_copy}
    checkpoint = {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "best": best,
    }
    with atomic_path(checkpoint_path) as tmp:
        torch.save(checkpoint, tmp)
    with atomic_path(history_path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    # Logged after the checkpoint, so a logged epoch is always a resumable one.
    log.info("epoch %d/%d train_loss %.4f val_loss %.4f val_dsb %.4f (%.0f s)", epoch, epochs, train_loss, val_loss, val_dsb, row["seconds"])
    if best["epoch"] == epoch:
        log.info("new best model (val_dsb %.4f)", val_dsb)
    return best
