"""A model card's "caution" for a modality it is not fit for reaches the log and summary.csv."""

import io
import zipfile

import numpy as np
from conftest import CROPS
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


def test_the_default_model_points_h_and_e_images_to_he_unet(tmp_path):
    """segment with the default model on H&E tissue (a MoNuSeg validation crop) names the H&E
    model and how to select it; with he_unet the same image gets no caution."""
    with zipfile.ZipFile(CROPS / "monuseg_val_crops.zip") as archive:
        name = next(n for n in sorted(archive.namelist()) if n.startswith("images/"))
        (tmp_path / "tissue.png").write_bytes(archive.read(name))
    row = Segmenter("dsb2018_unet", tta=False).to_files(tmp_path / "tissue.png", tmp_path / "default", ["labels"])
    assert row["modality"] == "histology"
    assert "he_unet" in row["caution"] and "--model he_unet" in row["caution"] and "segment.model" in row["caution"]
    row = Segmenter("he_unet", tta=False).to_files(tmp_path / "tissue.png", tmp_path / "he", ["labels"])
    assert row["caution"] == "" and row["nuclei"] > 0
