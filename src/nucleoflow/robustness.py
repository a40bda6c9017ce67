"""Images as another microscope or lab would give them: rescaled, stain-jittered; and the scores
of a segmenter on them beside the unchanged images. Used by benchmarks/robustness.py and by the
candidate comparison (models/train_candidates.py), always on validation images.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage.color import hed2rgb, rgb2hed

from .dataset import Archive, find_samples, load_labels
from .prepared import read_prepared
from .scale import labels_to_shape, zoom
from .scores import image_scores

SCALES = (0.5, 0.75, 1.5, 2.0)
# Issue 12's target: every variant within this much DSB of the unchanged images.
TARGET = 0.03


def rescaled(image, labels, factor):
    """Image and labels as if the microscope magnified `factor` times more."""
    out = zoom(image, factor)
    return out, labels_to_shape(labels, out.shape[:2])


def stain_jittered(image, rng):
    """An RGB image with its haematoxylin, eosin and DAB amounts rescaled (0.6-1.4) and shifted,
    as another lab's staining would give (the HED jitter of Tellez et al. 2018)."""
    hed = rgb2hed(image[..., :3])
    rgb = hed2rgb(hed * rng.uniform(0.6, 1.4, 3) + rng.uniform(-0.03, 0.03, 3))
    return (rgb.clip(0, 1) * 255).round().astype(np.uint8)


def split_examples(data_dir, split="val"):
    """(id, modality, image, labels) of one split of a dataset built by the preprocess rule."""
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    rows = manifest[manifest["split"] == split]
    return [(row.id, row.modality, read_prepared(Path(data_dir) / row.image), tifffile.imread(Path(data_dir) / row.labels)) for row in rows.itertuples()]


def archive_examples(path, modality="histology"):
    """(id, modality, image, labels) of every image of an images/ + labels/ archive (e.g. MoNuSeg)."""
    archive = Archive(path)
    examples = []
    for sample in find_samples(archive):
        image = archive.image(sample.image)
        examples.append((sample.id, modality, image, load_labels(archive, sample, image.shape[:2])))
    return examples


def variants(examples, scales=SCALES, extra=None, seed=0):
    """(variant name, the name of the unchanged variant it is compared with, examples)."""
    yield "unchanged", "unchanged", examples
    for factor in scales:
        yield f"scale x{factor:g}", "unchanged", [(i, m, *rescaled(img, lab, factor)) for i, m, img, lab in examples]
    colour = [e for e in examples if e[2].shape[-1] == 3]
    if colour:
        rng = np.random.default_rng(seed)
        yield "colour, unchanged", "colour, unchanged", colour
        yield "colour, stain-jittered", "colour, unchanged", [(i, m, stain_jittered(img, rng), lab) for i, m, img, lab in colour]
    for name, more in (extra or {}).items():
        yield name, None, more


def score(pairs):
    """DSB (mean over images), AP@0.5 pooled over images and the found/true nucleus count ratio
    of (truth, labels) pairs."""
    frame = pd.DataFrame([image_scores(truth, labels) for truth, labels in pairs])
    pooled = frame[["tp_0.50", "fp_0.50", "fn_0.50"]].sum()
    return {
        "images": len(frame),
        "DSB": frame["dsb"].mean(),
        "AP@0.5 pooled": pooled["tp_0.50"] / max(1, pooled.sum()),
        "count ratio": frame["n_pred"].sum() / max(1, frame["n_true"].sum()),
    }


def robustness_table(segment, examples, scales=SCALES, extra=None):
    """One row per variant: its scores, its DSB difference to the unchanged images it derives
    from and `DSB if labelled as unchanged`: its score were each image labelled exactly as well
    as unchanged (the unchanged image's labels mapped to its grid as its truth is). The gap
    between the two is what the model loses; the gap between the latter and the unchanged DSB is
    what the metric itself loses when nuclei span fewer pixels (a one-pixel boundary costs a
    nucleus 9 px across more IoU than one 18 px across)."""
    rows, reference = [], {}
    for name, base, subset in variants(examples, scales, extra):
        truths = [truth for *_, truth in subset]
        labels = [segment(image) for _, _, image, _ in subset]
        row = {"variant": name, **score(zip(truths, labels))}
        if name == base:
            reference[name] = row["DSB"], labels
        if base:
            base_dsb, base_labels = reference[base]
            row["DSB - unchanged"] = row["DSB"] - base_dsb
            mapped = score((truth, labels_to_shape(got, truth.shape)) for truth, got in zip(truths, base_labels))["DSB"] if name != base else base_dsb
            row["DSB if labelled as unchanged"] = mapped
        rows.append(row)
    return pd.DataFrame(rows)


def worst_variant(table):
    """The row of the variant furthest below its unchanged images."""
    return table.dropna(subset=["DSB - unchanged"]).sort_values("DSB - unchanged").iloc[0]
