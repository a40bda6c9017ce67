"""Postprocess thresholds tuned on the validation split (never the test split)."""

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from .atomic import atomic_path
from .heads import DEFAULT, get_head
from .options import Thresholds
from .postprocess import instances
from .progress import progress
from .scores import image_scores

log = logging.getLogger(__name__)

# A modality with fewer validation images than this keeps the global values: its own would be noise.
MIN_IMAGES = 10


def _score(pairs, params, head):
    return float(np.mean([image_scores(truth, instances(probs, Thresholds(**params, head=head)))["dsb"] for probs, truth in pairs]))


def _search(pairs, base, grid, rows, head):
    """Score every point of `grid` over `base`, append them to rows; the best point (first on ties)."""
    tried = []
    points = list(itertools.product(*grid.values()))
    for values in progress(points, desc=f"tune {', '.join(grid)} ({len(pairs)} images)", unit="point", log=log):
        params = {**base, **dict(zip(grid, values))}
        tried.append({**params, "dsb": _score(pairs, params, head)})
        log.debug("%s -> val DSB %.4f", params, tried[-1]["dsb"])
    rows.extend(tried)
    best = max(tried, key=lambda row: row["dsb"])
    return {name: best[name] for name in base}


def tune_thresholds(pairs, head=DEFAULT):
    """(best params, table of every tried point) by mean DSB over (maps, true labels) pairs of a
    model of `head`, on that head's grids (head.py)."""
    rows = []
    grids = get_head(head)  # the head's threshold and size grids
    params = _search(pairs, Thresholds().values(), grids.threshold_grid, rows, head)
    params = _search(pairs, params, grids.size_grid, rows, head)
    table = pd.DataFrame(rows).drop_duplicates().sort_values("dsb", ascending=False, kind="stable")
    return params, table


def tune_by_modality(pairs, modalities, min_images=MIN_IMAGES, head=DEFAULT):
    """Global thresholds, plus under params["modality"] those of each modality (one per pair) with
    at least min_images images; the table's "modality" column names the search ("all": global)."""
    params, table = tune_thresholds(pairs, head)
    tables = [table.assign(modality="all")]
    own = {}
    for modality in sorted(set(modalities)):
        subset = [pair for pair, m in zip(pairs, modalities) if m == modality]
        if len(subset) >= min_images:
            own[modality], found = tune_thresholds(subset, head)
            tables.append(found.assign(modality=modality))
            log.info("%s (%d images): %s, DSB %.4f", modality, len(subset), own[modality], found["dsb"].iloc[0])
    return ({**params, "modality": own} if own else params), pd.concat(tables, ignore_index=True)


def tune_folder(probs_dir, data_dir, split, params_path, table_path, head=DEFAULT):
    """Tune on the maps (of a model of `head`) of `split` images; write the chosen params (JSON)
    and the table."""
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ValueError(f"no {split} images in {data_dir}/manifest.csv to tune the postprocess on")
    pairs = [(tifffile.imread(Path(probs_dir) / f"{row.id}.tif").astype(np.float32), tifffile.imread(Path(data_dir) / row.labels)) for row in rows.itertuples()]
    params, table = tune_by_modality(pairs, list(rows["modality"]), head=head)
    log.info("tuned on %d %s images: %s, DSB %.4f", len(pairs), split, params, table["dsb"].iloc[0])
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(params_path) as tmp:
        tmp.write_text(json.dumps(params, indent=2) + "\n")
    return params
