"""Training data: normalised images with their head's targets, random crops (zoomed windows,
kept on the GPU when training there), batches augmented on the training device."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch

from .augment import Augmentation, colour_jitter, crop_window, simulate_low_resolution, zoom_to
from .device import autocast
from .heads import DEFAULT, get_head
from .normalize import normalize
from .prepared import read_prepared

NO_AUGMENTATION = Augmentation.from_config(None)


@dataclass
class Example:
    id: str
    modality: str
    image: np.ndarray  # normalised float32 (3, H, W)
    target: np.ndarray  # uint8 (H, W): the head's targets (Head.targets)
    labels: np.ndarray  # instance ids (H, W)
    # Where the original image starts in `image`, and its (H, W): `resident` examples are padded
    # once, up front, so that crops are plain slices on the device.
    origin: tuple = (0, 0)
    shape: tuple = None


def load_split(data_dir, manifest, split, targets="inner_boundary", head=DEFAULT):
    """The images of one split, normalised, with the targets of kind `targets` (train.targets)
    that the head named `head` learns from."""
    make_targets = get_head(head).targets
    examples = []
    for row in manifest[manifest["split"] == split].itertuples():
        labels = tifffile.imread(Path(data_dir) / row.labels)
        image = normalize(read_prepared(Path(data_dir) / row.image))
        examples.append(Example(row.id, row.modality, image, make_targets(labels, targets), labels))
    return examples


def pad_to(array, size):
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
    padded_h, padded_w = max(h, side), max(w, side)  # the image after pad_to(image, side)
    y = rng.integers(0, padded_h - height + 1)
    x = rng.integers(0, padded_w - width + 1)
    image, target, (oy, ox) = example.image, example.target, example.origin
    if image.shape[-2] < padded_h or image.shape[-1] < padded_w:
        image, target = pad_to(image, side), pad_to(target, side)
        oy, ox = (padded_h - h) // 2, (padded_w - w) // 2
    # Symmetric padding gives the same pixels at the same offsets from the original, however
    # far it pads: a pre-padded image yields the crop the numpy path would.
    y += oy - (padded_h - h) // 2
    x += ox - (padded_w - w) // 2
    return image[:, y : y + height, x : x + width], target[y : y + height, x : x + width]


def augment_batch(images, targets, rng, colour=(), aug=NO_AUGMENTATION):
    """Per-crop low-resolution and colour jitter (augment.py), dihedral transform, channel shuffle (stain colour),
    contrast/brightness/gamma jitter; colour: per crop, whether it comes from a colour image.

    Runs on the training device: on a GPU the Python loop here is the step's only CPU work.
    """
    images = simulate_low_resolution(images, aug.lowres, rng)
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
        image, target = pad_to(e.image, window), pad_to(e.target, window)
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
    return augment_batch(images, targets, rng, [examples[i].modality == "histology" for i in picks], aug)


def sampling_weights(examples, balance):
    """Weight each image by 1 / count(modality)**balance: 0 = uniform, 1 = equal per modality."""
    counts = pd.Series([e.modality for e in examples]).value_counts()
    weights = np.array([1.0 / counts[e.modality] ** balance for e in examples])
    return weights / weights.sum()


def validation_crops(examples, size, per_side=4):
    """Fixed crops of each validation image, so that epochs are compared on the same pixels: a
    centred grid of up to per_side x per_side crops that tile it (one centre crop where the
    image is less than two crops high and wide). A few large validation images (MoNuSeg's are 1000 px) are then judged
    on most of their nuclei, not on one noisy centre crop each."""
    crops = []
    for e in examples:
        image, target, labels = pad_to(e.image, size), pad_to(e.target, size), pad_to(e.labels, size)
        height, width = image.shape[1:]
        rows, cols = min(height // size, per_side), min(width // size, per_side)
        top, left = (height - rows * size) // 2, (width - cols * size) // 2
        for y in range(top, top + rows * size, size):
            for x in range(left, left + cols * size, size):
                crops.append((image[:, y : y + size, x : x + size], target[y : y + size, x : x + size], labels[y : y + size, x : x + size]))
    return crops


@torch.no_grad()
def crop_logits(model, crops, device, batch_size):
    """(float logits (n, outputs, size, size), the crops) of validation crops, batch by batch,
    the model in eval mode: training's validation loss and best_epoch's score see the same."""
    model.eval()
    for i in range(0, len(crops), batch_size):
        chunk = crops[i : i + batch_size]
        images = torch.from_numpy(np.stack([c[0] for c in chunk])).to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(images)
        yield logits.float(), chunk
