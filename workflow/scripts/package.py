"""Snakemake script: the tuned model + model card (data, scores) + ONNX export + BioImage.IO package."""

import hashlib
from pathlib import Path

import pandas as pd

from nucleoflow.bioimage import write_package
from nucleoflow.logs import setup_logging
from nucleoflow.package import package_model, sample_image

setup_logging(snakemake.log[0])
archive = Path(snakemake.input.archive)
manifest = pd.read_csv(Path(snakemake.input.data) / "manifest.csv")
data = {
    "url": snakemake.params.data["url"],
    "sha256": hashlib.sha256(archive.read_bytes()).hexdigest() if archive.is_file() else None,
    "split": snakemake.params.data["split"],
    "images": manifest["split"].value_counts().to_dict(),
    "manifest_sha256": hashlib.sha256((Path(snakemake.input.data) / "manifest.csv").read_bytes()).hexdigest(),
}
package_model(snakemake.input.model, snakemake.input.summary, Path(snakemake.output.model).parent, data, snakemake.params.predict)
write_package(
    snakemake.output.model,
    sample_image(snakemake.input.data),
    snakemake.output.bioimageio,
    name="nucleoflow U-Net (trained by the workflow)",
)
