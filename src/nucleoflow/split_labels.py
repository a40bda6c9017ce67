"""The workflow's labels of a dataset's splits, made as users make theirs.

The metrics, the model card and the report describe these labels, so they come from the path
users run (`nucleoflow segment`, the `segment` rule, the Python API): a Segmenter with the tuned
model (package.tuned_model: its thresholds and nucleus sizes) labels each image's own file from
the archive (not the prepared array: the reader reads it once, as it reads a user's), block by
block, zoomed where its nuclei need it, with its modality's thresholds.
"""

import logging
import tempfile
from pathlib import Path, PurePosixPath

import pandas as pd

from .atomic import staging_dir
from .dataset import Archive, find_samples
from .progress import progress
from .segment import Segmenter

log = logging.getLogger(__name__)


def label_splits(model_path, archive, data_dir, out_dir, splits, threads=1, workers=1, **options):
    """Write out_dir/<id>.tif (all or none), the labels of the images of the prepared dataset
    (data_dir: its manifest.csv) in `splits`, each read from `archive` (the dataset's source);
    options: Segmenter's (tiling, thresholds). Returns {id: nuclei}."""
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    wanted = set(manifest.loc[manifest["split"].isin(splits), "id"])
    source = Archive(archive)
    samples = [sample for sample in find_samples(source) if sample.id in wanted]
    nuclei = {}
    with (
        Segmenter(model_path, threads=threads, workers=workers, **options) as segmenter,
        segmenter.gathered_cautions(),
        staging_dir(out_dir) as staged,
        tempfile.TemporaryDirectory() as originals,
        progress(total=len(samples), desc="label", unit="image", log=log) as bar,
    ):
        for sample in samples:
            image = Path(originals) / f"{sample.id}{PurePosixPath(sample.image).suffix}"
            image.write_bytes(source.read(sample.image))
            nuclei[sample.id] = segmenter.to_tiff(image, staged / f"{sample.id}.tif")
            image.unlink()
            bar.update(1)
    log.info("labelled %d images of %s: %d nuclei", len(nuclei), "+".join(splits), sum(nuclei.values()))
    return nuclei
