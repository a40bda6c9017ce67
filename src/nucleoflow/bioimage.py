"""A BioImage.IO model package (spec 0.5) of a trained model, for deepImageJ, ilastik, QuPath and
bioimageio.core: TorchScript and ONNX weights, test tensors, a cover and the model card."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import tifffile
import torch
from matplotlib.figure import Figure

from .atomic import staging_dir
from .engine import _Probabilities, export_onnx
from .lineage import summary
from .model import load_model
from .normalize import normalize

# What the spec cannot say about our preprocessing, for the description.
NOT_IN_SPEC = (
    "Gray images go in as 3 identical channels. Images with a bright background (brightfield, H&E) "
    "must be inverted (x -> 1 - x after scaling) so nuclei are bright; the package's preprocessing "
    "(percentile scaling, clip) does not do that."
)


def _cover(path, image, maps):
    """Input beside the head's last two maps (red: last, green: the one before; interior_border:
    border red, interior green): 2:1, as the zoo shows covers."""
    fig = Figure(figsize=(8, 4), dpi=100)
    left, right = fig.add_axes((0, 0, 0.5, 1)), fig.add_axes((0.5, 0, 0.5, 1))
    left.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
    right.imshow(np.stack([maps[-1], maps[-2], np.zeros_like(maps[0])], axis=-1))
    for ax in (left, right):
        ax.axis("off")
    fig.savefig(path)


def card_markdown(card, name):
    """The model card as documentation: how it was trained, tuned and scored."""
    rows = [
        f"| {split} | {modality} | {m['n_images']} | {m['dsb']:.3f} | {m['ap_0.50']:.3f} |"
        for split, modalities in card.get("metrics", {}).items()
        for modality, m in modalities.items()
    ]
    return "\n".join(
        [
            f"# {name}: nucleus segmentation (nucleoflow)",
            "",
            "A 2D U-Net giving 3-class probabilities (background, nucleus interior, nucleus border) per pixel. "
            "nucleoflow turns them into instance labels with a seeded watershed (seeds: interior above "
            "`seed_threshold`; grown over interior + border above `foreground_threshold`); tools opening "
            "this package get the probabilities, the watershed stays in nucleoflow.",
            "",
            NOT_IN_SPEC,
            "",
            f"Architecture: {json.dumps(card.get('config', {}))}",
            f"Training: {json.dumps(card.get('train', {}))}",
            f"Data: {json.dumps(card.get('data', {}))}",
            *(f"Training {line}" for line in summary(card.get("lineage", []))),
            f"Postprocess thresholds (tuned on {card.get('postprocess_tuned_on', 'val')}): {json.dumps(card.get('postprocess', {}))}",
            "",
            "## Validation",
            "",
            "Scores on the held-out splits (DSB: mean over images of the mean AP over IoU 0.50-0.95):",
            "",
            "| split | modality | images | DSB | AP@0.5 |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def write_package(model_path, test_image, out_dir, documentation=None, name="nucleoflow U-Net"):
    """Write out_dir/rdf.yaml and its files for the model at `model_path`; `test_image` is an
    (H, W, C) fluorescence image (sides multiples of 16) for the test tensors and the cover;
    `documentation` a model card (markdown) to copy, else one is written from the card."""
    from bioimageio.spec import ValidationContext, save_bioimageio_yaml_only
    from bioimageio.spec.model import v0_5 as spec

    model, card = load_model(model_path, "cpu")
    with staging_dir(out_dir) as folder:
        raw = np.repeat(test_image, 3 // test_image.shape[-1], axis=-1).astype(np.float32).transpose(2, 0, 1)[None]
        network = _Probabilities(copy.deepcopy(model).eval())
        scaled = torch.from_numpy(normalize(test_image)[None])
        with torch.no_grad():
            expected = network(scaled).numpy()
            torch.jit.trace(network, scaled).save(folder / "weights_torchscript.pt")
        export_onnx(model, str(folder / "weights.onnx"))
        np.save(folder / "test_input.npy", raw)
        np.save(folder / "test_output.npy", expected)
        tifffile.imwrite(folder / "sample_input.tif", raw[0], compression="zlib")  # what the zoo and tools preview
        tifffile.imwrite(folder / "sample_output.tif", expected[0], compression="zlib")
        _cover(folder / "cover.png", normalize(test_image), expected[0])
        if documentation:
            shutil.copyfile(documentation, folder / "README.md")
        else:
            (folder / "README.md").write_text(card_markdown(card, name))
        step = model.multiple
        space = [spec.SpaceInputAxis(id=spec.AxisId(a), size=spec.ParameterizedSize(min=step, step=step)) for a in "yx"]
        with ValidationContext(root=folder, perform_io_checks=True):
            descr = spec.ModelDescr(
                name=name,
                description=(
                "Nucleus segmentation in fluorescence, brightfield and H&E images: 3-class probabilities "
                f"(background, interior, border) for a seeded watershed. {NOT_IN_SPEC}"
            ),
                authors=[spec.Author(name="nucleoflow developers")],
                cite=[
                    spec.CiteEntry(
                    text="Caicedo et al. 2019, Nucleus segmentation across imaging experiments: the 2018 Data Science Bowl",
                    doi=spec.Doi("10.1038/s41592-019-0612-7"),
                ),
                    spec.CiteEntry(text="Ronneberger et al. 2015, U-Net", doi=spec.Doi("10.1007/978-3-319-24574-4_28")),
                ],
                license="MIT",
                tags=["nuclei", "segmentation", "unet", "2d", "fluorescence", "brightfield", "histology", "pytorch", "dsb2018"],
                documentation=spec.FileDescr(source="README.md"),
                covers=[spec.FileDescr(source="cover.png")],
                inputs=[
                    spec.InputTensorDescr(
                        id=spec.TensorId("image"),
                        description="RGB image (gray: 3 identical channels), any bit depth",
                        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in ("red", "green", "blue")]), *space],
                        test_tensor=spec.FileDescr(source="test_input.npy"),
                        sample_tensor=spec.FileDescr(source="sample_input.tif"),
                        preprocessing=[
                            # normalize.intensity_range: percentiles 1 and 99.8 over all channels of the image
                            spec.ScaleRangeDescr(
                            kwargs=spec.ScaleRangeKwargs(axes=[spec.AxisId(a) for a in ("channel", "y", "x")], min_percentile=1.0, max_percentile=99.8)
                        ),
                            spec.ClipDescr(kwargs=spec.ClipKwargs(min=-0.5, max=1.5)),
                        ],
                    )
                ],
                outputs=[
                    spec.OutputTensorDescr(
                        id=spec.TensorId("probabilities"),
                        description=network.head.description,
                        axes=[
                            spec.BatchAxis(),
                            spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in network.head.outputs]),
                            *[
                            spec.SpaceOutputAxis(id=spec.AxisId(a), size=spec.SizeReference(tensor_id=spec.TensorId("image"), axis_id=spec.AxisId(a)))
                            for a in "yx"
                        ],
                        ],
                        test_tensor=spec.FileDescr(source="test_output.npy"),
                        sample_tensor=spec.FileDescr(source="sample_output.tif"),
                    )
                ],
                weights=spec.WeightsDescr(
                    torchscript=spec.TorchscriptWeightsDescr(source="weights_torchscript.pt", pytorch_version=spec.Version(torch.__version__.split("+")[0])),
                    onnx=spec.OnnxWeightsDescr(source="weights.onnx", opset_version=17, parent="torchscript"),
                ),
            )
        save_bioimageio_yaml_only(descr, folder / "rdf.yaml")
    return Path(out_dir) / "rdf.yaml"
