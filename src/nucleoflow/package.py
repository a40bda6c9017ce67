"""A trained model packaged for users: weights with tuned thresholds and a model card, plus ONNX."""

from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .engine import export_onnx
from .model import load_model, save_model
from .prepared import read_prepared


def _metrics(summary):
    """{split: {modality: {n_images, dsb, ap_0.50 (mean per image), ap_pooled_0.50}}} from summary.csv."""
    columns = ["n_images", "dsb", "ap_0.50", "ap_pooled_0.50"]
    return {
        split: {row["modality"]: {c: (int(row[c]) if c == "n_images" else round(float(row[c]), 4)) for c in columns} for _, row in frame.iterrows()}
        for split, frame in summary.groupby("split")
    }


def sample_image(data_dir, side=128):
    """The first fluorescence test image (else the first image) of a built dataset, cropped to at
    most side x side with sides multiples of 16: the BioImage.IO package's test input."""
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv")
    preferred = manifest[(manifest["split"] == "test") & (manifest["modality"] == "fluorescence")]
    row = (preferred if len(preferred) else manifest).iloc[0]
    image = read_prepared(Path(data_dir) / row["image"])
    return image[: min(side, image.shape[0] // 16 * 16), : min(side, image.shape[1] // 16 * 16)]


def tuned_model(model_path, thresholds, out_path, sizes=None):
    """The model saved again with what decides its labels besides the weights, as Segmenter
    reads them from its card; returns the card.

    thresholds: the options.ThresholdSet to label with, kept with the split they were tuned on
    (postprocess_tuned_on; null: given in the config, not tuned). sizes: the training
    nucleus-size distribution (scale.training_sizes), which the size-aware inference zooms
    images to (without it, no image is zoomed).
    """
    model, metadata = load_model(model_path, "cpu")
    card = {
        **metadata,
        "postprocess": thresholds.to_json(),
        "postprocess_tuned_on": thresholds.tuned_on,
        **({"nucleus_diameter_px": sizes} if sizes else {}),
    }
    save_model(model, out_path, **card)
    return card


def package_model(tuned_path, summary_path, out_dir, data, predict):
    """Write out_dir/{model.pt, model.json, model.onnx}: a tuned model (tuned_model) with a card
    that also records how it was made and scored."""
    model, metadata = load_model(tuned_path, "cpu")
    card = {**metadata, "data": data, "predict": predict, "metrics": _metrics(pd.read_csv(summary_path))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, out_dir / "model.pt", **card)
    with atomic_path(out_dir / "model.onnx") as tmp:
        export_onnx(model, str(tmp))
    return card
