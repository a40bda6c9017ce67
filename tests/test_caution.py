"""A model card's "caution" for a modality it is not fit for reaches the log and summary.csv."""

import io
import zipfile

import numpy as np
from PIL import Image

from nucleoflow.model import load_model, save_model
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path

NOTE = "not fit for H&E tissue: MoNuSeg DSB 0.05"


def test_caution_names_the_images_it_concerns(crops_zip, tmp_path, caplog):
    model, metadata = load_model(model_path("dsb2018_unet"))
    save_model(model, tmp_path / "model.pt", **{**metadata, "caution": {"histology": NOTE}})
    with zipfile.ZipFile(crops_zip) as archive:
        images = {n: np.asarray(Image.open(io.BytesIO(archive.read(n)))) for n in sorted(archive.namelist()) if n.startswith("images/")}
    colour = next(n for n, a in images.items() if a.ndim == 3)
    gray = next(n for n, a in images.items() if a.ndim == 2)
    for name in (colour, gray):
        Image.fromarray(images[name]).save(tmp_path / name.split("/")[1])
    segmenter = Segmenter(tmp_path / "model.pt", tta=False)
    with caplog.at_level("WARNING", logger="nucleoflow.segment"):
        rows = {name: segmenter.to_files(tmp_path / name.split("/")[1], tmp_path / "out", ["labels"]) for name in (colour, gray)}
    assert rows[colour]["modality"] == "histology" and rows[colour]["caution"] == NOTE
    assert rows[gray]["caution"] == ""
    assert NOTE in caplog.text and colour.split("/")[1] in caplog.text and gray.split("/")[1] not in caplog.text
