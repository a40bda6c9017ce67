"""(Re)build the BioImage.IO package of the shipped model, src/nucleoflow/models/dsb2018_unet/bioimageio/.

    python models/package_bioimageio.py

Its test tensors come from a committed DSB2018 fluorescence crop (.test/data), its documentation
is the model's card (README.md). The workflow's `package` rule does the same for models it trains.
"""

import zipfile
from pathlib import Path

from nucleoflow.bioimage import write_package
from nucleoflow.decode import decode_image
from nucleoflow.reader import to_hwc
from nucleoflow.shipped import MODELS

ROOT = Path(__file__).resolve().parents[1]
CROP = "images/4596961c789d3b41.png"  # a fluorescence crop

with zipfile.ZipFile(ROOT / ".test" / "data" / "dsb2018_crops.zip") as archive:
    image = to_hwc(decode_image(archive.read(CROP), CROP), CROP)[:128, :128]  # small test tensors: the package is committed
model = MODELS / "dsb2018_unet"
print(write_package(model / "model.pt", image, model / "bioimageio", documentation=model / "README.md", name="nucleoflow dsb2018_unet"))
