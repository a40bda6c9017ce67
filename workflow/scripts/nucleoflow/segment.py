"""One call from images to instance labels, for the workflow and for users' own code."""

import logging
from pathlib import Path

import torch

from .device import pick_device
from .errors import InputError
from .infer import probabilities
from .io import IMAGE_SUFFIXES, read_image, staging_dir, write_tiff
from .model import load_model
from .postprocess import instances

log = logging.getLogger(__name__)


class Segmenter:
    """Load a trained model once; call it on (H, W) or (H, W, C) arrays to get uint32 labels.

    >>> seg = Segmenter("results/model/model.pt")
    >>> labels = seg(image)
    """

    def __init__(self, model_path, tile=256, overlap=0.25, batch_size=4, device=None, **postprocess):
        self.model, self.metadata = load_model(model_path, device or pick_device())
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self.postprocess = postprocess

    def __call__(self, image, name="image"):
        probs = probabilities(self.model, image, self.tile, self.overlap, self.batch_size, name)
        return instances(probs, **self.postprocess)


def segment_folder(input_dir, out_dir, model_path, threads=1, **options):
    """Label every PNG/TIFF image in input_dir into out_dir/<stem>.tif; all or nothing."""
    torch.set_num_threads(threads)
    input_dir = Path(input_dir)
    try:
        entries = sorted(p for p in input_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise InputError(input_dir, f"cannot be listed ({exc.strerror})", "Set segment.input_dir to a readable folder of images") from exc
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        found = f"holds no .png/.tif images ({len(entries)} other files)" if entries else "is empty"
        raise InputError(input_dir, found, "Put PNG or TIFF images in it, or set segment.input_dir to another folder")
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        raise InputError(input_dir, "holds two images with the same name stem", "Rename them: outputs are named <stem>.tif")
    segmenter = Segmenter(model_path, **options)
    with staging_dir(out_dir) as tmp:
        for n, path in enumerate(images, 1):
            labels = segmenter(read_image(path), name=path)
            write_tiff(tmp / f"{path.stem}.tif", labels)
            log.info("%d/%d %s: %d nuclei", n, len(images), path.name, labels.max())
