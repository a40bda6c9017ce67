"""Training targets at zoom 0.5: the full-size targets resized with nearest neighbour (as
crops.zoom_to does) against targets made from the halved labels, on every sixth training image
(round 5's README).

    python models/rounds/round5_lower_lr/zoomed_targets.py

run from the repository root (results/data: the preprocess rule's folder).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from nucleoflow.heads import DEFAULT, get_head
from nucleoflow.scale import labels_to_shape

DATA = Path("results/data")
INTERIOR, BORDER = 1, 2  # interior_border's classes


def compare(labels, kind, head):
    """Nuclei, interior parts and border pixels of both halved targets of one label image."""
    targets = head.targets(labels, kind)
    size = (max(1, labels.shape[0] // 2), max(1, labels.shape[1] // 2))
    nearest = F.interpolate(torch.from_numpy(targets.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0].numpy()
    halved = labels_to_shape(labels, size)
    made = head.targets(halved, kind)
    return {
        "kind": kind,
        "nuclei": int(halved.max()),
        "interior parts, nearest": ndi.label(nearest == INTERIOR)[1],
        "interior parts, made": ndi.label(made == INTERIOR)[1],
        "border px, nearest": int((nearest == BORDER).sum()),
        "border px, made": int((made == BORDER).sum()),
    }


def main():
    head = get_head(DEFAULT)
    manifest = pd.read_csv(DATA / "manifest.csv")
    paths = manifest[manifest["split"] == "train"]["labels"].iloc[::6]
    rows = [compare(tifffile.imread(DATA / path), kind, head) for path in paths for kind in ("touching", "inner_boundary")]
    print(pd.DataFrame(rows).groupby("kind").sum().to_string())


if __name__ == "__main__":
    main()
