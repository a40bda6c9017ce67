"""One call from images to instance labels, for the workflow and for users' own code."""

import logging
import os
import shutil
from pathlib import Path

from .blocks import RegionSource, label_image, open_image, write_label_tiff
from .engine import load_engine
from .errors import InputError
from .io import IMAGE_SUFFIXES, staging_dir
from .options import ThresholdSet, split_options
from .progress import LOG_INTERVAL_S, progress

log = logging.getLogger(__name__)


class Segmenter:
    """Load a trained model once; call it on (H, W) or (H, W, C) arrays to get uint32 labels.

    >>> seg = Segmenter("dsb2018_unet")  # a shipped model by name, or a model.pt path
    >>> labels = seg(image)

    Keyword options are the fields of options.Tiling (tile, overlap, batch_size, tta, block,
    context, engine) and of options.Thresholds (seed_threshold, foreground_threshold,
    min_seed_area, min_area); each defaults to the value there. Thresholds not given default to
    the ones tuned for the model (saved in its card; for a modality with its own, those, the
    modality told from the image's pixels as the normaliser tells its polarity). Images are
    labelled in blocks of `block` pixels with `context` pixels around each, so memory stays
    bounded for images of any size.
    """

    def __init__(self, model_path, threads=1, **options):
        self.tiling, overrides = split_options(options)
        self.engine = load_engine(model_path, self.tiling.engine, threads)
        self.metadata = self.engine.metadata
        card = self.metadata.get("postprocess")
        tuned = ThresholdSet.from_json(card, self.metadata.get("postprocess_tuned_on")) if card else ThresholdSet()
        self.thresholds = tuned.with_overrides(**overrides)

    def thresholds_for(self, source):
        """The postprocess thresholds for one image (a RegionSource): those of its modality."""
        return self.thresholds.for_modality(source.appearance.modality)

    def __call__(self, image, name="image", tiles=None):
        """tiles: a tqdm bar (or None) that counts the network's tiles."""
        source = RegionSource(image, name)
        return label_image(source, self.engine, self.tiling, self.thresholds_for(source), tiles)

    def to_tiff(self, image_path, out_path, tiles=None):
        """Label an image file of any size into a TIFF, reading and writing it block by block;
        returns the nucleus count."""
        source = open_image(image_path)
        try:
            return write_label_tiff(out_path, source, self.engine, self.tiling, self.thresholds_for(source), tiles)
        finally:
            source.close()


def list_images(folder, setting):
    """The PNG/TIFF images in `folder`, sorted by name; `setting` (what chose the folder: a config
    key or a command-line argument) is named in errors."""
    folder = Path(folder)
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise InputError(folder, f"cannot be listed ({exc.strerror})", f"Set {setting} to a readable folder of images") from exc
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        found = f"holds no .png/.tif images ({len(entries)} other files)" if entries else "is empty"
        raise InputError(folder, found, f"Put PNG or TIFF images in it, or set {setting} to another folder")
    return images


def check_stems(images, where):
    """Refuse two images whose outputs would share a name."""
    seen = {}
    for path in images:
        if path.stem in seen:
            clash = f"holds two images with the name stem {path.stem!r} ({seen[path.stem]}, {path})"
            raise InputError(where, clash, "Rename one: outputs are named <stem>.tif")
        seen[path.stem] = path


def segment_images(segmenter, images, out_dir):
    """Label each image into out_dir/<stem>.tif (each file written whole or not at all), with
    progress over the images and over the tiles of each."""
    with progress(images, desc="images", unit="image", log=log) as bar:
        for path in bar:
            with progress(desc=path.name, unit="tile", log=log, leave=False, position=1, delay=LOG_INTERVAL_S) as tiles:
                count = segmenter.to_tiff(path, Path(out_dir) / f"{path.stem}.tif", tiles)
            log.info("%s: %d nuclei", path.name, count)


def segment_folder(input_dir, out_dir, model_path, shard=(1, 1), threads=1, **options):
    """Label every PNG/TIFF image in input_dir into out_dir/<stem>.tif; all or nothing.

    shard (k, n): only the k-th of every n images (sorted by name), so n jobs share a folder.
    """
    images = list_images(input_dir, "segment.input_dir")
    check_stems(images, input_dir)
    k, n = shard
    segmenter = Segmenter(model_path, threads, **options)
    with staging_dir(out_dir) as tmp:
        segment_images(segmenter, images[k - 1 :: n], tmp)


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
