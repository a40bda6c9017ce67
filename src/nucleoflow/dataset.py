"""Training data: read the Kaggle (DSB2018) or the images/labels layout, from a zip or a folder.

Members are read into memory and never extracted, so archive paths (absolute, `..`) cannot
write anywhere.
"""

import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .appearance import appearance, pixel_sample
from .atomic import staging_dir, write_tiff
from .decode import decode_image, image_suffixes, open_bytes
from .errors import InputError

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
# An archive member inflating past this is refused as a likely decompression bomb.
MAX_MEMBER_BYTES = 1 << 30


class Archive:
    """Uniform read access to the members of a zip file or a folder tree."""

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            self._zip = None
            entries = list(self.path.rglob("*"))
            self._names = sorted(p.relative_to(self.path).as_posix() for p in entries if p.is_file())
            for p in entries:
                if p.is_symlink() and not p.exists():
                    log.warning("%s: skipped, a broken link (its target does not exist)", p)
        else:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(
                    self.path,
                    f"is not a readable zip archive ({exc})",
                    "The download is corrupt or truncated: delete it and run again, or point data.url at a good copy",
                ) from exc
            self._names = sorted(i.filename for i in self._zip.infolist() if not i.is_dir())

    def names(self):
        return self._names

    def read(self, name):
        where = f"{self.path}:{name}"
        if self._zip is None:
            return (self.path / name).read_bytes()
        info = self._zip.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputError(where, f"inflates to {info.file_size} bytes", "Refusing a likely decompression bomb")
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise InputError(where, f"cannot be extracted ({exc})", "The archive is corrupt: fetch it again") from exc

    def image(self, name):
        """The network channels (H, W, 1 or 3) of an image member (decode.open_bytes)."""
        return decode_image(self.read(name), f"{self.path}:{name}")

    def _planes(self, name):
        """A RegionSource of a member whose stored planes are read as they are (mask, labels): the
        channel given only satisfies open_bytes; no channel is chosen and no appearance judged."""
        return open_bytes(self.read(name), f"{self.path}:{name}", channel=0)

    def mask(self, name):
        """A mask member (one nucleus, the Kaggle layout) as boolean (H, W): any stored channel
        non-zero where not transparent. Its stored pixels, not an image's network channels: a
        mask has no appearance to judge, and one nucleus of one colour set apart from the rest is
        what a fill looks like to it (read as background)."""
        source = self._planes(name)
        whole = (0, source.height, 0, source.width)
        mask = source.read_channels(*whole).max(axis=-1) > 0
        alpha = source.read_alpha(*whole)
        return mask if alpha is None else mask & (alpha > 0)

    def labels(self, name):
        """An instance label member as uint32 (H, W), checked and relabelled (instance_labels)."""
        where = f"{self.path}:{name}"
        source = self._planes(name)
        if source.channels not in (1, 3, 4):
            raise InputError(where, f"has {source.channels} channels or planes", "Save labels as one 2D integer image (one id per nucleus)")
        return instance_labels(source.read_channels(0, source.height, 0, source.width), where)


def instance_labels(raw, name):
    """(H, W) uint32 instance labels from a label image as read ((H, W, C), C = 1, or 3-4
    for colour-coded labels): each connected piece of one id (8-connected) is a nucleus. Good
    labels keep their ids; others are relabelled 1..N with a warning naming the file: colour-coded
    labels, a binary mask, ids reused on separate objects, huge ids (which would wrap in uint32
    or make training allocate by the largest id). Float or negative labels are refused."""
    from skimage.measure import label as connected

    if raw.dtype.kind == "f" or (raw.dtype.kind == "i" and raw.min(initial=0) < 0):
        raise InputError(name, "is not an integer label image (float or negative values)", "Save labels as uint16/uint32, one id per nucleus, 0 for background")
    if raw.shape[-1] == 1:
        ids = raw[..., 0]
    elif all(np.array_equal(raw[..., 0], raw[..., c]) for c in (1, 2)):
        ids = raw[..., 0]
    else:  # colour-coded: one colour per nucleus, black background
        colours, ids = np.unique(raw[..., :3].reshape(-1, 3), axis=0, return_inverse=True)
        ids = ids.reshape(raw.shape[:2]) + 1
        black = np.flatnonzero((colours == 0).all(axis=1))
        if len(black):
            ids[ids == black[0] + 1] = 0
        log.warning("%s: colour-coded labels: %d colours read as nucleus ids (black is background)", name, len(colours) - len(black))
    values, sequential = np.unique(ids, return_inverse=True)  # no wrap: ids of any size
    sequential = sequential.reshape(ids.shape).astype(np.uint32)
    if values[0] != 0:
        sequential += 1
    n_ids = int((values != 0).sum())
    pieces = connected(sequential, background=0, connectivity=2).astype(np.uint32)
    n_pieces = int(pieces.max(initial=0))
    largest = int(values[-1]) if len(values) else 0
    if n_ids == 1 and n_pieces > 1 and largest in (1, 255, 65535, 2**32 - 1):
        log.warning(
            "%s: a binary mask (0 and %d), not instance labels: its %d connected objects are taken as nuclei and touching nuclei stay merged; "
            "save one integer id per nucleus for exact training targets",
            name, largest, n_pieces,
        )  # fmt: skip
    elif n_pieces > n_ids:
        log.warning(
            "%s: %d ids each cover several separate objects; each connected object is made a nucleus of its own (%d ids -> %d nuclei)",
            name, int(np.count_nonzero(np.bincount(_source_ids(sequential, pieces)) > 1)), n_ids, n_pieces,
        )  # fmt: skip
    if largest >= 2**31:
        log.warning("%s: ids up to %d (%s) relabelled 1..%d", name, largest, raw.dtype, n_pieces)
    elif n_pieces == n_ids and raw.shape[-1] == 1:
        return ids.astype(np.uint32)  # already instance labels: ids kept as they are
    return pieces


def _source_ids(ids, pieces):
    """For each piece, the id it came from (to count ids split into several pieces)."""
    owner = np.zeros(int(pieces.max(initial=0)) + 1, np.int64)
    owner[pieces.ravel()] = ids.ravel()
    return owner[1:]


@dataclass
class Sample:
    id: str
    image: str  # member name of the image
    masks: list  # Kaggle: one member per nucleus; images/labels layout: [label member]
    root: tuple = None  # the member path above images/ (and labels/ or masks/)


def find_samples(archive):
    """Group archive members into samples, in either supported layout."""
    # Keep each member's own name: rejoining its parts would not find `/x` or `a//b` again.
    candidates = [
        (n, PurePosixPath(n).parts)
        for n in archive.names()
        if n.lower().endswith(image_suffixes()) and not PurePosixPath(n).name.startswith(".")
    ]
    layout = "folder" if any(len(p) >= 2 and p[-2] == "labels" for _, p in candidates) else "kaggle"
    for name in archive.names():  # files where images belong that are not images: never silently
        parts = PurePosixPath(name).parts
        if len(parts) >= 2 and parts[-2] in ("images", "labels", "masks") and not name.lower().endswith(image_suffixes()) and not parts[-1].startswith("."):
            log.warning("%s:%s: skipped, not an image this tool reads (%s)", archive.path, name, ", ".join(image_suffixes()))
    by_id = {}
    for name, parts in candidates:
        folder = parts[-2] if len(parts) >= 2 else None
        if layout == "folder" and folder in ("images", "labels"):
            key = PurePosixPath(parts[-1]).stem
        elif layout == "kaggle" and folder in ("images", "masks") and len(parts) >= 3:
            key = parts[-3]
        else:
            continue
        if key in ("", ".", "..") or "/" in key or "\\" in key:
            # The id names output files (images/<id>.tif): `/` would make that path absolute.
            raise InputError(
                f"{archive.path}:{name}",
                f"gives the unusable image id {key!r}",
                "Repack the archive with relative member paths such as <id>/images/<id>.png",
            )
        sample = by_id.setdefault(key, Sample(key, None, [], None))
        root = parts[:-2]  # the folder holding images/ and labels/ (masks/), which must agree
        again = (folder == "images" and sample.image) or (layout == "folder" and folder == "labels" and sample.masks)
        if again or (sample.root is not None and root != sample.root):
            first = sample.image if folder == "images" or not sample.masks else sample.masks[0]
            raise InputError(
                f"{archive.path}:{name}",
                f"gives the image id {key!r} that {first} gives too (ids come from file and folder names)",
                "Rename one of them, or keep one dataset per folder (train/ and test/ folders as separate data.url)",
            )
        sample.root = root
        if folder == "images":
            sample.image = name
        else:
            sample.masks.append(name)
    if not by_id:
        raise InputError(
            archive.path,
            "holds no images in a known layout",
            "Use the DSB2018 layout (<id>/images/<id>.png, <id>/masks/*.png) "
            "or images/<stem>.png|tif with labels/<stem>.tif",
        )
    samples = []
    for key in sorted(by_id):
        sample = by_id[key]
        if sample.image is None:
            raise InputError(f"{archive.path}:{sample.masks[0]}", "has masks but no image", "Add the image or remove the masks")
        if not sample.masks:
            raise InputError(
                f"{archive.path}:{sample.image}",
                "has no masks" if layout == "kaggle" else "has no label image",
                "Add its masks (<id>/masks/*.png) or labels/<stem>.tif, or remove the image",
            )
        samples.append(sample)
    log.info("found %d images in the %s layout in %s", len(samples), layout, archive.path)
    return samples


def load_labels(archive, sample, shape):
    """Build one instance label image; overlapping mask pixels keep the first mask (by name)."""
    if PurePosixPath(sample.masks[0]).parts[-2] == "labels":
        labels = archive.labels(sample.masks[0])
        if labels.shape != shape:
            raise InputError(
                f"{archive.path}:{sample.masks[0]}",
                f"is {labels.shape[0]}x{labels.shape[1]} but its image is {shape[0]}x{shape[1]}",
                "Labels must have the image's size",
            )
        return labels
    labels = np.zeros(shape, np.uint32)
    overlap, next_id = 0, 1
    for name in sorted(sample.masks):
        mask = archive.mask(name)
        if mask.shape != shape:
            raise InputError(
                f"{archive.path}:{name}",
                f"mask is {mask.shape[0]}x{mask.shape[1]} but its image is {shape[0]}x{shape[1]}",
                "Each mask must have its image's size",
            )
        if not mask.any():
            log.warning("%s: empty mask skipped", name)
            continue
        taken = mask & (labels > 0)
        overlap += int(taken.sum())
        labels[mask & ~taken] = next_id
        next_id += 1
    if overlap:
        log.warning("%s: %d pixels in more than one mask kept their first mask", sample.id, overlap)
    return labels


def assign_splits(modalities, seed, val_fraction, test_fraction):
    """Deterministic train/val/test split stratified by modality (a list aligned with input)."""
    modalities = list(modalities)
    rng = np.random.default_rng(seed)
    split = ["train"] * len(modalities)
    for modality in sorted(set(modalities)):
        members = [i for i, m in enumerate(modalities) if m == modality]
        rng.shuffle(members)
        n_test = int(round(len(members) * test_fraction))
        n_val = int(round(len(members) * val_fraction))
        for i in members[:n_test]:
            split[i] = "test"
        for i in members[n_test : n_test + n_val]:
            split[i] = "val"
    # Small runs: rounding may leave a split empty; take one image from the training split
    # (a fraction of 0 asks for no such split: e.g. no test images where a separate set scores).
    for needed, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction > 0 and needed not in split and split.count("train") > 1:
            split[split.index("train")] = needed
    return split


def build_dataset(source, out_dir, max_images=0, seed=0, val_fraction=0.15, test_fraction=0.15):
    """Write images/<id>.tif, labels/<id>.tif and manifest.csv; all or nothing."""
    archive = Archive(source)
    samples = find_samples(archive)
    if max_images:
        samples = samples[:max_images]
    rows = []
    with staging_dir(out_dir) as tmp_dir:
        for n, sample in enumerate(samples, 1):
            image = archive.image(sample.image)
            labels = load_labels(archive, sample, image.shape[:2])
            dtype = np.uint16 if labels.max() < 2**16 else np.uint32
            write_tiff(tmp_dir / "images" / f"{sample.id}.tif", image)
            write_tiff(tmp_dir / "labels" / f"{sample.id}.tif", labels.astype(dtype))
            rows.append(
                dict(
                    id=sample.id,
                    height=image.shape[0],
                    width=image.shape[1],
                    channels=image.shape[2],
                    dtype=str(image.dtype),
                    modality=appearance(pixel_sample(image)).modality,
                    n_nuclei=len(np.unique(labels)) - 1,
                    image=f"images/{sample.id}.tif",
                    labels=f"labels/{sample.id}.tif",
                )
            )
            if n % 50 == 0 or n == len(samples):
                log.info("preprocessed %d/%d images", n, len(samples))
        manifest = pd.DataFrame(rows)
        manifest.insert(7, "split", assign_splits(manifest["modality"], seed, val_fraction, test_fraction))
        manifest.to_csv(tmp_dir / "manifest.csv", index=False)
    counts = manifest.groupby(["split", "modality"]).size()
    log.info("split sizes:\n%s", counts.to_string())
    return manifest
