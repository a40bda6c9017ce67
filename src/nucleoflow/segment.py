"""One call from images to instance labels, for the workflow and for users' own code."""

import logging
import os
import shutil
from pathlib import Path

from .blocks import RegionSource, label_image, open_image, write_label_tiff
from .dataset import infer_modality
from .engine import load_engine
from .errors import InputError
from .io import IMAGE_SUFFIXES, staging_dir
from .postprocess import thresholds_for

log = logging.getLogger(__name__)


class Segmenter:
    """Load a trained model once; call it on (H, W) or (H, W, C) arrays to get uint32 labels.

    >>> seg = Segmenter("dsb2018_unet")  # a shipped model by name, or a model.pt path
    >>> labels = seg(image)

    Postprocess thresholds default to the ones tuned for the model (saved in its card; for a
    modality with its own, those, the modality told from the image's pixels as in preprocess)
    and can be overridden by keyword (seed_threshold, foreground_threshold, min_seed_area,
    min_area). Images are labelled in blocks of `block` pixels with `context` pixels around
    each, so memory stays bounded for images of any size.
    """

    def __init__(self, model_path, tile=1024, overlap=0.0625, batch_size=1, tta=False, block=1024, context=64, engine="auto", threads=1, **postprocess):
        self.engine = load_engine(model_path, engine, threads)
        self.metadata = self.engine.metadata
        self.options = dict(tile=tile, overlap=overlap, batch_size=batch_size, tta=tta, block=block, context=context)
        self.thresholds = self.metadata.get("postprocess", {})
        self.overrides = postprocess

    def options_for(self, source):
        """Labelling options for one image (a RegionSource): the thresholds for its modality."""
        return {**self.options, **thresholds_for(self.thresholds, infer_modality(source.sample)), **self.overrides}

    def __call__(self, image, name="image"):
        source = RegionSource(image, name)
        return label_image(source, self.engine, **self.options_for(source))

    def to_tiff(self, image_path, out_path):
        """Label an image file of any size into a TIFF, reading and writing it block by block."""
        source = open_image(image_path)
        try:
            return write_label_tiff(out_path, source, self.engine, **self.options_for(source))
        finally:
            source.close()


def segment_folder(input_dir, out_dir, model_path, shard=(1, 1), **options):
    """Label every PNG/TIFF image in input_dir into out_dir/<stem>.tif; all or nothing.

    shard (k, n): only the k-th of every n images (sorted by name), so n jobs share a folder.
    """
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
    k, n = shard
    images = images[k - 1 :: n]
    segmenter = Segmenter(model_path, **options)
    with staging_dir(out_dir) as tmp:
        for n, path in enumerate(images, 1):
            count = segmenter.to_tiff(path, tmp / f"{path.stem}.tif")
            log.info("%d/%d %s: %d nuclei", n, len(images), path.name, count)


def gather_shards(shard_dirs, out_dir):
    """Merge the shards' outputs into one folder (hard links where possible, else copies)."""
    with staging_dir(out_dir) as tmp:
        for shard in shard_dirs:
            for path in sorted(Path(shard).glob("*.tif")):
                try:
                    os.link(path, tmp / path.name)
                except OSError:
                    shutil.copy2(path, tmp / path.name)
    log.info("gathered %d label images from %d shards", len(list(Path(out_dir).glob("*.tif"))), len(shard_dirs))
