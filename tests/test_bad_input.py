"""Bad input gives an InputError naming the file and the fix, and leaves no partial output.

Every image here is synthetic (numpy, written with PIL/tifffile into tmp_path).
"""

import io
import os
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from nucleoflow.dataset import build_dataset
from nucleoflow.errors import InputError
from nucleoflow.reader import to_hwc

COLUMNS = ["id", "height", "width", "channels", "dtype", "modality", "n_nuclei", "split", "image", "labels"]
SHAPE = (64, 64)


# ---------------------------------------------------------------- synthetic data


def disc(centre, radius=7, shape=SHAPE):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def micrograph(masks, seed=0, shape=SHAPE, rgb=False):
    """Dark noisy background with bright nuclei where the masks are (fluorescence-like)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 30, shape).astype(np.uint8)
    for mask in masks:
        image[mask] = rng.integers(180, 255)
    return np.repeat(image[..., None], 3, axis=-1) if rgb else image


def png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def tif(array):
    buf = io.BytesIO()
    tifffile.imwrite(buf, array)
    return buf.getvalue()


def mask_png(mask):
    return png(mask.astype(np.uint8) * 255)


def write_members(dest, members):
    """Write {member name: bytes} as a zip (dest ending .zip) or a folder tree."""
    dest = Path(dest)
    if dest.suffix == ".zip":
        with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        for name, data in members.items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
    return dest


CENTRES = [(12, 12), (12, 40), (40, 12), (40, 40), (52, 26)]


def kaggle_members(n_images=5):
    """Image i holds i + 1 nuclei, one PNG mask each; returns (members, expected nuclei per id)."""
    members, expected = {}, {}
    for i in range(n_images):
        sid = f"img{i:02d}"
        masks = [disc(c) for c in CENTRES[: i + 1]]
        members[f"stage1_train/{sid}/images/{sid}.png"] = png(micrograph(masks, seed=i, rgb=i % 2 == 1))
        for j, mask in enumerate(masks):
            members[f"stage1_train/{sid}/masks/m{j:02d}.png"] = mask_png(mask)
        expected[sid] = len(masks)
    return members, expected


def folder_members(image_suffixes=(".png", ".tif", ".png", ".tif")):
    """images/<stem>.png|tif with labels/<stem>.tif; returns (members, labels per stem)."""
    members, labels = {}, {}
    for i, suffix in enumerate(image_suffixes):
        stem = f"cell_{i}"
        label = np.zeros(SHAPE, np.uint16)
        for k, centre in enumerate(CENTRES[: i + 2], 1):
            label[disc(centre)] = 10 * k  # ids need not be consecutive
        image = micrograph([label > 0], seed=i)
        members[f"images/{stem}{suffix}"] = png(image) if suffix == ".png" else tif(image)
        members[f"labels/{stem}.tif"] = tif(label)
        labels[stem] = label
    return members, labels


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "results" / "data"


def build(source, out_dir):
    return build_dataset(source, out_dir, max_images=0, seed=0, val_fraction=0.2, test_fraction=0.2)


def assert_no_output(out_dir):
    """Neither the output folder nor a hidden staging sibling (.<name>.part) is left behind."""
    out_dir = Path(out_dir)
    assert not out_dir.exists()
    if out_dir.parent.exists():
        leftovers = [p.name for p in out_dir.parent.iterdir()]
        assert not [n for n in leftovers if n.startswith(".") or n.endswith(".part")], leftovers


def expect_error(source, out_dir, *needles):
    """build_dataset fails with an InputError whose message holds every needle; nothing is written."""
    with pytest.raises(InputError) as err:
        build(source, out_dir)
    message = str(err.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    problem, _, remedy = message.partition(". ")
    assert remedy.strip(), f"no remedy in {message!r}"
    assert_no_output(out_dir)
    return message


# ---------------------------------------------------------------- corrupt files


CORRUPT = {
    "random_bytes": lambda good: np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes(),
    "truncated_png": lambda good: good[: len(good) // 2],
    "empty_file": lambda good: b"",
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
@pytest.mark.parametrize("container", ["zip", "folder"])
def test_corrupt_image(tmp_path, out_dir, kind, container):
    members, _ = kaggle_members()
    name = "stage1_train/img02/images/img02.png"
    members[name] = CORRUPT[kind](members[name])
    source = write_members(tmp_path / ("in.zip" if container == "zip" else "in"), members)
    expect_error(source, out_dir, f"{source}:{name}", "cannot be decoded", "corrupt or truncated")


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_mask(tmp_path, out_dir, kind):
    members, _ = kaggle_members()
    name = "stage1_train/img03/masks/m01.png"
    members[name] = CORRUPT[kind](members[name])
    source = write_members(tmp_path / "in.zip", members)
    expect_error(source, out_dir, f"{source}:{name}", "cannot be decoded", "replace it or remove it")


def test_corrupt_label_tif(tmp_path, out_dir):
    members, _ = folder_members()
    members["labels/cell_1.tif"] = members["labels/cell_1.tif"][:40]
    source = write_members(tmp_path / "in.zip", members)
    expect_error(source, out_dir, f"{source}:labels/cell_1.tif", "cannot be decoded")


def test_truncated_zip(tmp_path, out_dir):
    members, _ = kaggle_members()
    good = write_members(tmp_path / "good.zip", members).read_bytes()
    source = tmp_path / "stage1_train.zip"
    source.write_bytes(good[: len(good) // 2])
    expect_error(source, out_dir, str(source), "not a readable zip archive", "delete it and run again")


def test_zip_with_corrupt_member_data(tmp_path, out_dir):
    """Central directory intact, deflate stream of one member broken: zlib.error must not escape."""
    members, _ = kaggle_members()
    source = write_members(tmp_path / "in.zip", members)
    name = "stage1_train/img01/images/img01.png"
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo(name)
    data = bytearray(source.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"), int.from_bytes(
        data[info.header_offset + 28 : info.header_offset + 30], "little"
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start] = 0xFF  # first deflate block header: BTYPE=11 is reserved, i.e. invalid
    source.write_bytes(bytes(data))
    expect_error(source, out_dir, f"{source}:{name}", "cannot be extracted", "fetch it again")


def test_missing_archive(tmp_path, out_dir):
    source = tmp_path / "nowhere.zip"
    expect_error(source, out_dir, str(source), "not a readable zip archive")


# ---------------------------------------------------------------- Kaggle layout


def test_kaggle_zip_builds_manifest(tmp_path, out_dir):
    members, expected = kaggle_members(5)
    # An empty mask is skipped, not counted as a nucleus.
    members["stage1_train/img00/masks/zz_empty.png"] = mask_png(np.zeros(SHAPE, bool))
    source = write_members(tmp_path / "stage1_train.zip", members)
    manifest = build(source, out_dir)

    on_disk = pd.read_csv(out_dir / "manifest.csv")
    assert list(on_disk.columns) == COLUMNS
    assert list(manifest.columns) == COLUMNS
    assert list(on_disk["id"]) == sorted(expected)
    assert dict(zip(on_disk["id"], on_disk["n_nuclei"])) == expected
    assert set(on_disk["split"]) == {"train", "val", "test"}
    assert set(on_disk["height"]) == {SHAPE[0]} and set(on_disk["width"]) == {SHAPE[1]}
    assert set(on_disk["channels"]) == {1}  # gray stored as RGB is reduced to one channel
    assert set(on_disk["modality"]) == {"fluorescence"}
    for row in on_disk.itertuples():
        labels = tifffile.imread(out_dir / row.labels)
        image = tifffile.imread(out_dir / row.image)
        assert labels.shape == SHAPE and image.shape[:2] == SHAPE
        assert len(np.unique(labels)) - 1 == row.n_nuclei == labels.max()
    assert_only(out_dir.parent, {"data"})


def assert_only(folder, names):
    assert {p.name for p in Path(folder).iterdir()} == names


def test_kaggle_masks_are_read_as_stored_pixels(tmp_path, out_dir):
    """A mask is its non-zero pixels as stored, never an image's network channels. A white nucleus
    over faint noise (a resampled or lossy mask) is what a fill looks like to an image's
    appearance: read as an image it would become background and the nucleus would shrink to the
    noise. Transparent pixels (an RGBA mask) are not the mask, whatever their colour."""
    nucleus = disc((30, 30), 10)
    faint = np.zeros(SHAPE, np.uint8)
    faint[::9, ::9] = 3
    noisy = np.where(nucleus, 255, faint).astype(np.uint8)
    rgba = np.zeros(SHAPE + (4,), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.where(nucleus, 255, 0)
    members = {
        "x/images/x.png": png(micrograph([nucleus])),
        "x/masks/noisy.png": png(noisy),
        "y/images/y.png": png(micrograph([nucleus], seed=3)),
        "y/masks/rgba.png": png(rgba),
    }
    build(write_members(tmp_path / "in.zip", members), out_dir)
    noisy_labels = tifffile.imread(out_dir / "labels" / "x.tif")
    assert noisy_labels.max() == 1 and (noisy_labels[nucleus] == 1).all()
    np.testing.assert_array_equal(tifffile.imread(out_dir / "labels" / "y.tif") == 1, nucleus)


def test_kaggle_overlapping_masks_keep_first(tmp_path, out_dir):
    a, b = disc((30, 26), 10), disc((30, 38), 10)
    assert (a & b).any() and (a & ~b).any() and (b & ~a).any()
    members = {
        "x/images/x.png": png(micrograph([a, b])),
        "x/masks/b_second.png": mask_png(b),
        "x/masks/a_first.png": mask_png(a),
        "y/images/y.png": png(micrograph([a], seed=3)),
        "y/masks/only.png": mask_png(a),
    }
    source = write_members(tmp_path / "in.zip", members)
    manifest = build(source, out_dir)
    assert dict(zip(manifest["id"], manifest["n_nuclei"])) == {"x": 2, "y": 1}
    labels = tifffile.imread(out_dir / "labels" / "x.tif")
    assert (labels[a] == 1).all()  # a_first sorts first: it keeps the shared pixels
    assert (labels[b & ~a] == 2).all()
    assert (labels[~(a | b)] == 0).all()


def test_kaggle_image_without_masks(tmp_path, out_dir):
    members, _ = kaggle_members()
    members = {k: v for k, v in members.items() if not k.startswith("stage1_train/img02/masks/")}
    source = write_members(tmp_path / "in.zip", members)
    expect_error(source, out_dir, f"{source}:stage1_train/img02/images/img02.png", "has no masks", "Add its masks")


def test_kaggle_masks_without_image(tmp_path, out_dir):
    members, _ = kaggle_members()
    del members["stage1_train/img03/images/img03.png"]
    source = write_members(tmp_path / "in.zip", members)
    expect_error(source, out_dir, f"{source}:stage1_train/img03/masks/", "has masks but no image", "Add the image")


def test_kaggle_mask_of_wrong_size(tmp_path, out_dir):
    members, _ = kaggle_members()
    name = "stage1_train/img04/masks/m02.png"
    members[name] = mask_png(disc((10, 10), shape=(48, 64)))
    source = write_members(tmp_path / "in.zip", members)
    expect_error(source, out_dir, f"{source}:{name}", "48x64", "64x64", "must have its image's size")


def test_no_images_in_known_layout(tmp_path, out_dir):
    members = {
        "README.txt": b"nothing to see",
        "photos/cat.png": png(micrograph([])),
        "loose.png": png(micrograph([])),
        "x/notes/y.png": png(micrograph([])),
    }
    source = write_members(tmp_path / "in.zip", members)
    expect_error(source, out_dir, str(source), "no images in a known layout", "<id>/images/<id>.png")


def test_empty_folder_is_no_dataset(tmp_path, out_dir):
    source = tmp_path / "empty"
    source.mkdir()
    expect_error(source, out_dir, str(source), "no images in a known layout")


# ---------------------------------------------------------------- images/labels layout


@pytest.mark.parametrize("container", ["zip", "folder"])
def test_folder_layout_builds(tmp_path, out_dir, container):
    members, labels = folder_members()
    members["README.md"] = b"my own nuclei"
    source = write_members(tmp_path / ("mine.zip" if container == "zip" else "mine"), members)
    manifest = build(source, out_dir)
    on_disk = pd.read_csv(out_dir / "manifest.csv")
    assert list(on_disk.columns) == COLUMNS and len(manifest) == len(labels)
    assert dict(zip(on_disk["id"], on_disk["n_nuclei"])) == {k: len(np.unique(v)) - 1 for k, v in labels.items()}
    for stem, label in labels.items():
        assert np.array_equal(tifffile.imread(out_dir / "labels" / f"{stem}.tif"), label)
    assert_only(out_dir.parent, {"data"})


def test_folder_layout_label_of_wrong_size(tmp_path, out_dir):
    members, _ = folder_members()
    members["labels/cell_2.tif"] = tif(np.ones((64, 40), np.uint16))
    source = write_members(tmp_path / "mine", members)
    expect_error(source, out_dir, f"{source}:labels/cell_2.tif", "64x40", "64x64", "Labels must have the image's size")


def test_folder_layout_image_without_label(tmp_path, out_dir):
    members, _ = folder_members()
    del members["labels/cell_3.tif"]
    source = write_members(tmp_path / "mine.zip", members)
    expect_error(source, out_dir, f"{source}:images/cell_3.tif", "has no label image", "labels/<stem>.tif")


def test_folder_layout_float_labels(tmp_path, out_dir):
    members, _ = folder_members()
    members["labels/cell_0.tif"] = tif(np.full(SHAPE, 0.5, np.float32))
    source = write_members(tmp_path / "mine", members)
    expect_error(source, out_dir, f"{source}:labels/cell_0.tif", "not an integer label image", "uint16")


# ---------------------------------------------------------------- odd shapes


@pytest.mark.parametrize("shape", [(5, 64, 64, 7), (64, 64, 7), (5, 64, 64), (3, 3)])
def test_to_hwc_refuses_stacks_and_odd_channels(shape):
    with pytest.raises(InputError) as err:
        to_hwc(np.zeros(shape, np.uint8), "stack.tif")
    assert str(err.value).startswith("stack.tif: ")
    assert err.value.path == "stack.tif"


def test_stack_image_in_dataset(tmp_path, out_dir):
    members, _ = folder_members()
    members["images/cell_1.tif"] = tif(np.zeros((5, 64, 64, 7), np.uint8))
    source = write_members(tmp_path / "mine.zip", members)
    expect_error(source, out_dir, f"{source}:images/cell_1.tif", "(5, 64, 64, 7)", "split stacks")


# ---------------------------------------------------------------- segment_folder


@pytest.mark.parametrize("case", ["empty", "no_images", "missing"])
def test_segment_folder_without_images(tmp_path, case):
    from nucleoflow.segment import segment_folder

    input_dir = tmp_path / "to_segment"
    if case != "missing":
        input_dir.mkdir()
    if case == "no_images":
        (input_dir / "notes.txt").write_text("x")
        (input_dir / "table.csv").write_text("a,b\n")
        (input_dir / "sub").mkdir()
        (input_dir / "sub" / "hidden_in_sub.png").write_bytes(png(micrograph([])))
        (input_dir / ".hidden.png").write_bytes(png(micrograph([])))
    out = tmp_path / "results" / "segmented"
    with pytest.raises(InputError) as err:
        segment_folder(input_dir, out, tmp_path / "no_model.pt")
    message = str(err.value)
    assert message.startswith(f"{input_dir}: ")
    expected = {"empty": "is empty", "no_images": "holds no images (3 other entries: notes.txt, sub, table.csv)", "missing": "cannot be listed"}
    assert expected[case] in message
    assert "segment.input_dir" in message
    assert_no_output(out)


# ---------------------------------------------------------------- untrusted model files


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_load_model_refuses_pickled_code(tmp_path):
    import torch

    from nucleoflow.model import load_model

    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {}, "config": {}, "metadata": Exploit(marker)}, path)
    with pytest.raises(InputError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: ") and "segment.model" in str(err.value)
    assert not marker.exists()
    # The file really carries code: an unsafe load runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_model_on_garbage(tmp_path):
    from nucleoflow.model import load_model

    path = tmp_path / "model.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(InputError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: ")


# ---------------------------------------------------------------- zip slip


def files_under(folder):
    return {p for p in Path(folder).rglob("*")}


def test_zip_slip_relative(tmp_path):
    """`..` members are read in memory, never extracted: nothing appears outside out_dir."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    out_dir = work / "out"
    a = disc((30, 30), 9)
    members = {
        "../evil/images/evil.png": png(micrograph([a])),
        "../evil/masks/m.png": mask_png(a),
        "../../../../../../../../tmp/evil2/images/evil2.png": png(micrograph([a], seed=2)),
        "../../../../../../../../tmp/evil2/masks/m.png": mask_png(a),
    }
    source = write_members(tmp_path / "slip.zip", members)
    before = files_under(tmp_path)
    manifest = build(source, out_dir)
    assert sorted(manifest["id"]) == ["evil", "evil2"]
    new = files_under(tmp_path) - before
    assert new and all(p == out_dir or out_dir in p.parents for p in new), sorted(new)
    for target in (tmp_path / "evil", tmp_path / "a" / "evil", work / "evil", Path("/tmp/evil2")):
        assert not target.exists()


def test_zip_slip_absolute(tmp_path, out_dir):
    """A Kaggle member `/images/x.png` would make the image id `/`, and images/<id>.tif the path /.tif."""
    targets = [Path("/.tif"), Path("/images"), Path("/masks")]
    existed = {t: t.exists() for t in targets}
    a = disc((30, 30), 9)
    members = {"/images/x.png": png(micrograph([a])), "/masks/m.png": mask_png(a)}
    source = write_members(tmp_path / "abs.zip", members)
    try:
        expect_error(source, out_dir, f"{source}:/images/x.png", "image id", "relative member paths")
    finally:
        for target in targets:
            if target.exists() and not existed[target]:
                target.unlink() if target.is_file() else None
                pytest.fail(f"build_dataset wrote {target}")


def test_absolute_members_in_folder_layout_are_read(tmp_path, out_dir):
    """An absolute member name with a safe id is read from the zip (its own name, not a rebuilt one)."""
    members, labels = folder_members((".png", ".tif"))
    members = {f"/abs/{k}": v for k, v in members.items()}
    source = write_members(tmp_path / "abs.zip", members)
    out_dir.parent.mkdir(parents=True)
    before = files_under(tmp_path)
    manifest = build(source, out_dir)
    assert sorted(manifest["id"]) == sorted(labels)
    assert all(out_dir in p.parents or p == out_dir for p in files_under(tmp_path) - before)
    assert not Path("/abs").exists()
