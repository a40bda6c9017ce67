"""What an image looks like, from its pixels: dense H&E tissue with a dark median is still a
stained, bright-background image (inverted for the network, histology thresholds), while
fluorescence, grey or colour composite, stays fluorescence."""

import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import CROPS

from nucleoflow.appearance import BRIGHT_MEDIAN, appearance, pixel_sample
from nucleoflow.decode import decode_image
from nucleoflow.reader import to_hwc


def images(archive):
    with zipfile.ZipFile(archive) as z:
        return {n.split("/")[-1][:-4]: to_hwc(decode_image(z.read(n), n), n) for n in z.namelist() if n.startswith("images/")}


@pytest.fixture(scope="module")
def he_crops():
    return images(CROPS / "monuseg_val_crops.zip")


def median_level(image):
    x = image.astype(np.float32)
    lo, hi = np.percentile(x, (1.0, 99.8))
    return np.median(x.mean(axis=-1) - lo) / (hi - lo)


def test_dense_he_tissue_with_a_dark_median_is_histology(he_crops):
    for name, image in he_crops.items():
        assert appearance(pixel_sample(image)).modality == "histology", name
        # Denser tissue: the same stains, darker overall, its median below the bright-background
        # level (6 of MoNuSeg's 14 test images are like this, and were taken for fluorescence).
        dense = (image.astype(np.float32) ** 1.6 / 255**0.6).astype(np.uint8)
        assert median_level(dense) < BRIGHT_MEDIAN, name
        seen = appearance(pixel_sample(dense))
        assert seen.bright_background and seen.modality == "histology", name


def test_fluorescence_stays_fluorescence_also_as_a_colour_composite():
    crops = pd.read_csv(CROPS / "crops.csv").set_index("stem")
    dsb = images(CROPS / "dsb2018_crops.zip")
    fluorescence = [s for s in dsb if crops.loc[s, "modality"] == "fluorescence"]
    assert len(fluorescence) >= 20
    for stem in fluorescence:
        grey = dsb[stem]
        assert appearance(pixel_sample(grey)).modality == "fluorescence", stem
        # DAPI in blue with a dimmer, wider stain in green: coloured, but its dark half is unlit.
        nuclei = grey[..., 0].astype(np.float32)
        composite = np.stack([np.zeros_like(nuclei), np.clip(0.6 * np.roll(nuclei, 3, axis=1), 0, 255), nuclei], axis=-1).astype(np.uint8)
        assert appearance(pixel_sample(composite)).modality == "fluorescence", stem
        # Confluent cells: a red cytoplasm stain over most of the field, the darker half red.
        confluent = composite.copy()
        confluent[..., 0] = np.clip(nuclei * 0.5 + 120, 0, 255).astype(np.uint8)
        assert appearance(pixel_sample(confluent)).modality == "fluorescence", stem
