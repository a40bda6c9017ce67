"""Inputs that lie (issue 14): each class planted through the library, each asserting the exact
outcome: a message naming the file (or key) and the remedy with no partial output, or a correct
result with a logged warning. Workflow-level cases (stale results, settings checked before any
job, the error printed last) are in test_workflow_inputs.py."""

import errno
import io
import logging
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from PIL import Image
from synthetic import discs
from test_bad_input import assert_no_output, build, folder_members, micrograph, png, tif, write_members
from test_faults import png_header_only, tile_bomb

from nucleoflow.atomic import staging_dir
from nucleoflow.dataset import build_dataset, instance_labels
from nucleoflow.errors import InputError, TrainingDiverged
from nucleoflow.reader import open_image
from nucleoflow.segment import Segmenter, segment_folder
from nucleoflow.shipped import model_path

SHIPPED = model_path("dsb2018_unet")
NUCLEI = discs(shape=(128, 160), radius=8) > 0


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter(SHIPPED, tta=False)


def expect(call, *needles):
    with pytest.raises(InputError) as err:
        call()
    message = str(err.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# ---------------------------------------------------------------- 1. non-finite pixels


@pytest.mark.parametrize("where", ["one_nan_pixel", "nan_rows", "inf_pixels", "nan_on_a_nucleus"])
def test_non_finite_pixels_read_as_background_with_a_warning(tmp_path, segmenter, caplog, where):
    clean = np.where(NUCLEI, 200.0, 20.0).astype(np.float32)
    planted = clean.copy()
    if where == "one_nan_pixel":
        planted[3, 3] = np.nan
    elif where == "nan_rows":
        planted[60:64] = np.nan
    elif where == "inf_pixels":
        planted[0, :10], planted[5, 5] = np.inf, -np.inf
    else:
        ys, xs = np.nonzero(NUCLEI)
        planted[ys[0], xs[0]] = np.nan
    tifffile.imwrite(tmp_path / "planted.tif", planted)
    tifffile.imwrite(tmp_path / "clean.tif", clean)
    with caplog.at_level(logging.WARNING):
        with segmenter.open(tmp_path / "planted.tif") as source:
            got = segmenter(source.read_all(), "planted.tif")
    assert "planted.tif" in caplog.text and "NaN or infinite" in caplog.text and "background" in caplog.text
    want = segmenter(open_image(tmp_path / "clean.tif").read_all())
    assert want.max() == 4
    if where == "nan_rows":  # the band becomes background: the nuclei it crossed are cut, never lost
        assert got.max() >= 4
    else:
        assert got.max() == 4
    # through the file path too (region reads): the same count
    assert segmenter.to_tiff(tmp_path / "planted.tif", tmp_path / "out" / "planted.tif") == got.max()


def test_image_of_only_nan_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "nan.tif", np.full((64, 64), np.nan, np.float32))
    expect(lambda: open_image(tmp_path / "nan.tif").read_all(), str(tmp_path / "nan.tif"), "has no finite pixel value")


def test_nan_training_image_is_preprocessed_finite_with_a_warning(tmp_path, caplog):
    members, _ = folder_members()
    image = micrograph([NUCLEI[:64, :64]]).astype(np.float32)
    image[10:14] = np.nan
    members["images/cell_1.tif"] = tif(image)
    source = write_members(tmp_path / "mine", members)
    with caplog.at_level(logging.WARNING):
        build(source, tmp_path / "data")
    assert f"{source}:images/cell_1.tif" in caplog.text and "NaN or infinite" in caplog.text
    assert np.isfinite(tifffile.imread(tmp_path / "data" / "images" / "cell_1.tif")).all()


@pytest.mark.slow
def test_training_stops_the_moment_the_loss_is_not_finite(tmp_path, monkeypatch):
    from nucleoflow import train
    from nucleoflow.interior_border import InteriorBorder

    members, _ = folder_members(tuple([".png"] * 6))
    data = tmp_path / "data"
    build_dataset(write_members(tmp_path / "mine", members), data, val_fraction=0.2, test_fraction=0.2)
    calls = []
    real = InteriorBorder.loss

    def poisoned(self, *args, **kwargs):
        calls.append(1)
        loss = real(self, *args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(InteriorBorder, "loss", poisoned)
    cfg = dict(epochs=2, samples_per_epoch=16, batch_size=2, crop_size=32, learning_rate=1e-3, weight_decay=0.0, modality_balance=0.0, seed=0)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 3: the loss became NaN or infinite. Lower train.learning_rate"):
        train.train(data, tmp_path / "epochs", tmp_path / "training", dict(depth=2, base_width=4, norm="batch"), cfg)
    assert len(calls) == 3  # stopped at once
    assert not (tmp_path / "epochs").exists() and not list((tmp_path / "training").iterdir())


def test_non_finite_weights_stop_training():
    from nucleoflow.loss import check_finite
    from nucleoflow.model import UNet

    model = UNet(depth=1, base_width=4)
    check_finite(torch.tensor(1.0), model, 1, 0)
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="the model weights became NaN or infinite"):
        check_finite(torch.tensor(1.0), model, 2, 5)


# ---------------------------------------------------------------- 2. bombs on every path


PEAK_SCRIPT = textwrap.dedent(
    """
    import sys
    from nucleoflow.errors import InputError
    kind, path = sys.argv[1:]
    try:
        if kind == "segment":
            from nucleoflow.segment import segment_folder
            segment_folder(path, path + "_out", "dsb2018_unet")
        elif kind == "dataset":
            from nucleoflow.dataset import build_dataset
            build_dataset(path, path + "_out")
        else:
            from nucleoflow.reader import open_image
            open_image(path).read(0, 64, 0, 64)
        print("NO ERROR")
    except InputError as exc:
        print(exc)
    # VmHWM: this process's own peak (ru_maxrss would carry over the forking parent's, across exec)
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print("PEAK_MB", int(hwm.split()[1]) / 1024)
    """
)


def peak(kind, path):
    """(message, peak resident MB) of one read in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, kind, str(path)], capture_output=True, text=True, env=env)
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("PEAK_MB"), out.stdout + out.stderr
    return lines[-2], float(lines[-1].split()[1])


def bomb_cases(tmp_path):
    """{case: (kind, path)}: one planted bomb per reader."""
    import zarr

    folder = tmp_path / "folder"
    folder.mkdir()
    tile_bomb(folder / "tiles.tif", 100_000)
    (tmp_path / "wide.png").write_bytes(png_header_only(45_000, 2_000))
    tile_bomb(tmp_path / "reuse.tif", 30_000)
    group = zarr.open_group(str(tmp_path / "big.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(1, 100_000, 100_000), dtype=np.uint16, chunks=(1, 1024, 1024))
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a} for a in "cyx"], "datasets": [{"path": "0"}]}]
    tifffile.imwrite(tmp_path / "channels.ome.tif", np.zeros((300, 16, 16), np.uint8), ome=True, metadata={"axes": "CYX"})
    with zipfile.ZipFile(tmp_path / "train.zip", "w") as zf:
        zf.writestr("images/a.tif", (tmp_path / "reuse.tif").read_bytes())
        zf.writestr("labels/a.tif", tif(np.zeros((64, 64), np.uint16)))
    return {
        "tiled TIFF 100000x100000, every tile the same 200 bytes (segment)": ("segment", folder, "declares 100000x100000 pixels"),
        "PNG header 45000x2000 (whole decode)": ("open", tmp_path / "wide.png", "declares 45000x2000 pixels"),
        "tiled TIFF 30000x30000 in 114 KB, shared tiles (region path)": ("open", tmp_path / "reuse.tif", "a likely decompression bomb"),
        "OME-Zarr 100000x100000": ("open", tmp_path / "big.ome.zarr", "declares 100000x100000 pixels"),
        "OME-TIFF with 300 channels": ("open", tmp_path / "channels.ome.tif", "declares 300 channels"),
        "training zip member: tiled TIFF 30000x30000": ("dataset", tmp_path / "train.zip", "a likely decompression bomb"),
    }


def test_bombs_are_refused_on_every_reader_in_bounded_memory(tmp_path):
    """Each bomb is refused from its declared size, in a fresh process that stays small."""
    for case, (kind, path, needle) in bomb_cases(tmp_path).items():
        message, peak_mb = peak(kind, path)
        assert needle in message, (case, message)
        assert peak_mb < 400, (case, peak_mb)
        print(f"peak memory {peak_mb:.0f} MB: {case}: {message}")
        assert not Path(str(path) + "_out").exists()


def test_huge_real_image_is_read_lazily(tmp_path):
    """A real 12000x12000 compressed tiled TIFF passes the limits and is read region by region."""
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((12000, 12000), np.uint8), tile=(512, 512), compression="zlib")
    message, peak_mb = peak("open", tmp_path / "big.tif")
    assert message == "NO ERROR" and peak_mb < 200


# ---------------------------------------------------------------- 3. guessed layouts (through segment)


def test_two_channel_tiff_in_segment_folder_is_refused_before_any_work(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.where(NUCLEI, 200, 20).astype(np.uint8)).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", np.stack([np.where(NUCLEI, 200, 20), np.full(NUCLEI.shape, 7)], -1).astype(np.uint8))
    out = tmp_path / "results" / "segment"
    expect(lambda: segment_folder(folder, out, tmp_path / "no_model.pt"), f"{folder / 'b.tif'}: has 2 channels", "Set segment.channel")
    assert_no_output(out)


def test_channel_picks_the_nuclear_plane(tmp_path, segmenter):
    image = np.stack([np.full(NUCLEI.shape, 50), np.where(NUCLEI, 200, 20)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "two.ome.tif", image, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["GFP", "DAPI"]}})
    seg = Segmenter(SHIPPED, channel="DAPI", tta=False)
    assert seg.to_tiff(tmp_path / "two.ome.tif", tmp_path / "out" / "two.tif") == 4


# ---------------------------------------------------------------- 4. label images that are not instance labels


def two_discs():
    return discs(shape=(64, 64), centres=[(16, 16), (44, 44)], radius=7)


@pytest.mark.parametrize(
    "case",
    ["int64_ids_over_2_32", "id_2_32_minus_1", "binary_0_255", "id_reused", "rgb_colour_coded", "gray_as_rgb"],
)
def test_label_images_are_validated_and_relabelled(case, caplog):
    labels = two_discs().astype(np.int64)
    if case == "int64_ids_over_2_32":
        raw = np.where(labels == 1, 1, np.where(labels == 2, 2**32 + 1, 0))  # would wrap onto id 1 in uint32
        needle = "relabelled 1..2"
    elif case == "id_2_32_minus_1":
        raw = np.where(labels == 2, 2**32 - 1, labels).astype(np.uint32)
        needle = "relabelled 1..2"
    elif case == "binary_0_255":
        raw = np.where(labels > 0, 255, 0).astype(np.uint8)
        needle = "a binary mask (0 and 255), not instance labels: its 2 connected objects are taken as nuclei"
    elif case == "id_reused":
        raw = np.where(labels > 0, 5, 0).astype(np.uint16)
        raw[0:3, 60:63] = 9  # a third, correct nucleus
        needle = "1 ids each cover several separate objects; each connected object is made a nucleus of its own (2 ids -> 3 nuclei)"
    elif case == "rgb_colour_coded":
        colours = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255]], np.uint8)
        raw = colours[labels]
        needle = "colour-coded labels: 2 colours read as nucleus ids"
    else:
        raw = np.repeat((labels * 40).astype(np.uint8)[..., None], 3, -1)
        needle = None
    raw = raw if raw.ndim == 3 else raw[..., None]
    with caplog.at_level(logging.WARNING):
        got = instance_labels(raw, "labels/x.tif")
    assert got.dtype == np.uint32
    expected = 3 if case == "id_reused" else 2
    assert len(np.unique(got)) - 1 == expected
    assert (got > 0).sum() == (raw.max(-1) > 0).sum()  # no pixel of a nucleus lost
    if needle:
        assert "labels/x.tif" in caplog.text and needle in caplog.text, caplog.text
    else:
        assert not caplog.text


def test_relabelled_labels_reach_the_dataset(tmp_path, caplog):
    members, _ = folder_members()
    members["labels/cell_0.tif"] = tif(np.where(two_discs() > 0, 2**32 + 7, 0).astype(np.int64))
    source = write_members(tmp_path / "mine", members)
    with caplog.at_level(logging.WARNING):
        manifest = build(source, tmp_path / "data")
    assert manifest.set_index("id").loc["cell_0", "n_nuclei"] == 2
    assert f"{source}:labels/cell_0.tif" in caplog.text


@pytest.mark.parametrize("case", ["png_beside_tif", "train_and_test_folders", "two_label_files", "kaggle_two_roots"])
def test_duplicate_ids_are_refused_not_overwritten(tmp_path, case):
    members, _ = folder_members()
    if case == "png_beside_tif":
        members["images/cell_1.png"] = png(micrograph([]))  # cell_1.tif is there too
        needle = "images/cell_1"
    elif case == "train_and_test_folders":
        members = {f"{split}/{name}": data for split in ("train", "test") for name, data in members.items()}
        needle = "test/images/cell_0"
    elif case == "two_label_files":
        members["more/labels/cell_2.tif"] = members["labels/cell_2.tif"]
        needle = "labels/cell_2.tif"
    else:
        disc = png(np.where(two_discs() == 1, 255, 0).astype(np.uint8))
        members = {f"{root}/x/images/x.png": png(micrograph([])) for root in ("stage1_train", "stage1_test")}
        members.update({f"{root}/x/masks/m.png": disc for root in ("stage1_train", "stage1_test")})
        needle = "gives the image id 'x'"
    source = write_members(tmp_path / "mine.zip", members)
    message = expect(lambda: build(source, tmp_path / "data"), str(source), needle, "Rename one of them")
    assert "gives the image id" in message
    assert_no_output(tmp_path / "data")


# ---------------------------------------------------------------- 6. settings: models that lie


def save_payload(path, config, state_dict=None):
    torch.save({"config": config, "state_dict": state_dict or {}, "metadata": {}}, path)
    return path


@pytest.mark.parametrize(
    "config, needle",
    [
        (dict(in_channels=3, n_classes=3, depth=40, base_width=16, norm="batch"), "asks for a U-Net with depth = 40, outside 1-6"),
        (dict(in_channels=3, n_classes=3, depth=4, base_width=100000, norm="batch"), "base_width = 100000"),
        (dict(in_channels=4, n_classes=3, depth=4, base_width=16, norm="batch"), "is a network with 4 input channels"),
        (dict(in_channels=3, n_classes=2, depth=4, base_width=16, norm="batch"), "is a network with 2 outputs"),
        (dict(in_channels=3, n_classes=3, depth=4, base_width=16, norm="batch", head="flows"), "asks for the unknown head 'flows'"),
        (dict(in_channels=3, n_classes=3, depth=4, base_width=16, norm="batch", head="distance"), "its distance head reads 2"),
        (dict(in_channels=3, n_classes=3, depth=4, base_width=16, norm="magic"), "unknown normalisation 'magic'"),
        ("not a dict", "holds no model configuration"),
    ],
)
def test_model_files_asking_for_other_networks_are_refused_before_building(tmp_path, config, needle):
    from nucleoflow.model import load_model

    path = save_payload(tmp_path / "model.pt", config)
    expect(lambda: load_model(path), f"{path}: ", needle, "segment.model")


def test_random_bytes_are_not_called_pickled_code(tmp_path):
    from nucleoflow.model import load_model

    path = tmp_path / "model.pt"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    message = expect(lambda: load_model(path), f"{path}: is not a PyTorch model file", "segment.model")
    assert "pickled" not in message


def test_tile_size_against_the_loaded_model_is_checked_before_any_image():
    with pytest.raises(ValueError, match=r"predict.tile_size \(1000\) must be a multiple of 16 \(2\*\*depth\) for the model .*: set it to 992 or 1008"):
        Segmenter(SHIPPED, tile=1000)


# ---------------------------------------------------------------- 7. errors naming the file


@pytest.mark.parametrize("damage", ["truncated", "garbage_tile"])
def test_corrupt_tiled_tiff_names_the_file(tmp_path, damage):
    path = tmp_path / "slide.tif"
    image = (np.random.default_rng(0).random((1024, 1024)) * 255).astype(np.uint8)
    tifffile.imwrite(path, image, tile=(256, 256), compression="zlib")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as t:
        offsets, counts = t.pages[0].dataoffsets, t.pages[0].databytecounts
    if damage == "truncated":
        data = data[: offsets[-1] + counts[-1] // 2]
    else:
        data[offsets[5] : offsets[5] + counts[5]] = b"\xff" * counts[5]
    path.write_bytes(bytes(data))
    out = tmp_path / "results" / "segment"
    with pytest.raises(InputError) as err:
        with open_image(path) as source:
            source.read(0, 1024, 0, 1024)
    assert str(err.value).startswith(f"{path}: cannot be decoded at rows 0-1024, columns 0-1024")
    assert "corrupt or truncated: replace it" in str(err.value)
    assert_no_output(out)


def test_expected_error_prints_its_message_last_and_the_traceback_to_the_log(tmp_path):
    log = tmp_path / "rule.log"
    script = f"""
import os
os.chdir({str(tmp_path)!r})
from nucleoflow.logs import setup_logging
from nucleoflow.reader import open_image
setup_logging({str(log)!r})
try:
    raise OSError("no network")
except OSError as exc:
    raise open_image.__globals__["InputError"]("https://example.org/x.zip", "cannot be downloaded (offline)", "Set data.url to a local copy") from exc
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 1
    lines = [line for line in out.stderr.strip().splitlines() if line]
    assert lines[-2] == "nucleoflow: error: https://example.org/x.zip: cannot be downloaded (offline). Set data.url to a local copy"
    assert lines[-1] == f"(details: {log})"
    assert "Traceback" not in out.stderr
    assert "Traceback" in log.read_text() and "OSError: no network" in log.read_text()
    assert "cannot be downloaded" in (tmp_path / ".snakemake" / "nucleoflow_errors" / os.listdir(tmp_path / ".snakemake" / "nucleoflow_errors")[0]).read_text()


def test_unexpected_error_keeps_its_traceback(tmp_path):
    script = f"from nucleoflow.logs import setup_logging\nsetup_logging({str(tmp_path / 'r.log')!r})\nraise KeyError('bug')\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "Traceback" in out.stderr and "KeyError: 'bug'" in out.stderr


# ---------------------------------------------------------------- 8. staging unique per process


def test_concurrent_staging_never_deletes_the_other_jobs(tmp_path):
    out = tmp_path / "results" / "segment"
    with staging_dir(out) as first:
        (first / "a.tif").write_text("first job")
        with staging_dir(out) as second:  # a rerun started while the first job still runs
            assert second != first and first.exists()
            (second / "a.tif").write_text("second job")
        assert first.exists() and (first / "a.tif").read_text() == "first job"
        assert (out / "a.tif").read_text() == "second job"
    assert (out / "a.tif").read_text() == "first job"  # complete either way, never half of each
    assert [p.name for p in out.parent.iterdir()] == ["segment"]


def test_stale_staging_of_dead_processes_is_removed(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    out = tmp_path / "labels"
    stale = tmp_path / f".labels.{socket.gethostname()}.{dead}.abc.part"
    live = tmp_path / f".labels.{socket.gethostname()}.{os.getppid()}.abc.part"
    other_host = tmp_path / f".labels.elsewhere.{dead}.abc.part"
    for folder in (stale, live, other_host):
        folder.mkdir()
    with staging_dir(out):
        pass
    assert not stale.exists() and live.exists() and other_host.exists()


def test_full_disk_is_checked_before_the_workflow_starts(monkeypatch):
    import shutil

    namespace = {}
    common = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    exec(compile(common.split("\ndef library(")[0], "common.smk", "exec"), namespace)  # the imports and MIN_FREE_MB
    exec(compile("def disk_space_problem" + common.split("\ndef disk_space_problem")[1].split("\ndef print_job_errors")[0], "common.smk", "exec"), namespace)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    message = namespace["disk_space_problem"](".")
    assert message.startswith("only 5 MiB free on the disk of") and "free disk space" in message
    assert errno.ENOSPC  # writes themselves: test_faults.test_unwritable_output_gives_clear_error_and_no_partial_folder


# ---------------------------------------------------------------- 9. skipped entries named


def test_skipped_entries_are_named_in_the_log_and_the_summary(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    gray = np.where(NUCLEI, 200, 20).astype(np.uint8)
    Image.fromarray(gray).save(folder / "a.png")
    Image.fromarray(gray).save(folder / "b.jpg", quality=95)  # supported
    (folder / "notes.txt").write_text("x")
    (folder / "gone.png").symlink_to(folder / "missing.png")  # a broken link
    out = tmp_path / "results" / "segment"
    with caplog.at_level(logging.WARNING):
        segment_folder(folder, out, SHIPPED, tta=False)
    summary = pd.read_csv(out / "summary.csv").set_index("image")
    assert summary.loc["a.png", "status"] == summary.loc["b.jpg", "status"] == "segmented"
    assert summary.loc["b.jpg", "nuclei"] == 4
    assert summary.loc["gone.png", "status"] == "skipped: a broken link (its target does not exist)"
    assert summary.loc["notes.txt", "status"].startswith("skipped: not an image this tool reads")
    assert f"{folder / 'gone.png'}: skipped, a broken link" in caplog.text
    assert (out / "b.tif").exists()


def test_zip_image_decoded_through_the_reader():
    """The training path uses the same reader: a palette PNG member is read through its palette."""
    from nucleoflow.decode import decode_image

    image = Image.fromarray((NUCLEI * 1).astype(np.uint8), mode="L").convert("P")
    image.putpalette([0, 0, 0, 200, 200, 200] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue(), "x/images/x.png")
    assert decoded.shape == NUCLEI.shape + (1,) and decoded.max() == 200


def test_skipped_training_files_are_named(tmp_path, caplog):
    members, _ = folder_members()
    members["images/cell_0.txt"] = b"not an image"
    source = write_members(tmp_path / "mine", members)
    (source / "images" / "cell_9.png").symlink_to(source / "images" / "nowhere.png")
    with caplog.at_level(logging.WARNING):
        manifest = build(source, tmp_path / "data")
    assert f"{source}:images/cell_0.txt: skipped, not an image this tool reads" in caplog.text
    assert f"{source / 'images' / 'cell_9.png'}: skipped, a broken link" in caplog.text
    assert len(manifest) == 4
