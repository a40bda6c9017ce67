"""Block-wise labelling: lazy TIFF reads, labels streamed to disk, and no seams between blocks."""

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from interrupts import default_sigint
from synthetic import discs, probabilities_from

from nucleoflow import pool
from nucleoflow.appearance import appearance, pixel_sample
from nucleoflow.blocks import label_bands, label_image
from nucleoflow.decode import decode_image
from nucleoflow.formats import write_label_ome_tiff
from nucleoflow.options import Thresholds, Tiling
from nucleoflow.pool import SHM
from nucleoflow.reader import open_image, to_hwc
from nucleoflow.region import RegionSource
from nucleoflow.scores import iou_matrix
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path


class EncodedProbabilities:
    """Engine for images whose three channels encode (background, interior, border): a local,
    exact stand-in for a network, so any difference between block-wise and whole-image labels
    comes from the stitching."""

    multiple = 16
    n_classes = 3

    def __call__(self, batch):
        logits = 20 * batch
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def tiling(**blocks):
    """Small tiles with a wide overlap: many tile and block seams in a small image."""
    return Tiling(tile=256, overlap=0.25, batch_size=4, tta=False, **blocks)


def many_discs(shape=(700, 900), radius=12, seed=0):
    """Discs on a grid with jitter: many cross block borders, some touch."""
    rng = np.random.default_rng(seed)
    centres = [(y + rng.integers(-6, 7), x + rng.integers(-6, 7)) for y in range(20, shape[0] - 15, 26) for x in range(20, shape[1] - 15, 27)]
    return discs(shape, centres, radius)


def encoded_image(labels):
    return (probabilities_from(labels).transpose(1, 2, 0) * 255).astype(np.uint8)


def matched_fraction(reference, other, min_iou):
    """Fraction of reference objects with an object in `other` overlapping at IoU >= min_iou."""
    iou = iou_matrix(reference, other)
    return float((iou.max(axis=1) >= min_iou).mean())


@pytest.mark.parametrize("block, context", [(256, 40), (320, 64), (512, 30)])
def test_blocks_equal_whole_image_on_exact_probabilities(block, context):
    truth = many_discs()
    source = RegionSource(encoded_image(truth), "discs")
    whole = label_image(source, EncodedProbabilities(), tiling(block=2048, context=0), Thresholds(min_area=1))
    tiled = label_image(source, EncodedProbabilities(), tiling(block=block, context=context), Thresholds(min_area=1))
    assert whole.max() == truth.max() > 500
    assert tiled.max() == whole.max() and np.array_equal(np.unique(tiled), np.arange(whole.max() + 1))
    # Every object is found whole, with one label; watershed breaks ties between touching nuclei
    # in flooding order, which can move a pixel or two of their shared border (IoU >= 0.99).
    assert matched_fraction(whole, tiled, 0.99) == 1.0
    assert (whole.astype(bool) != tiled.astype(bool)).sum() <= 5  # foreground pixels that differ


def test_too_small_context_cuts_nuclei_and_says_so(caplog):
    truth = many_discs()
    source = RegionSource(encoded_image(truth), "discs")
    whole = label_image(source, EncodedProbabilities(), tiling(block=2048, context=0), Thresholds(min_area=1))
    tiled = label_image(source, EncodedProbabilities(), tiling(block=256, context=4), Thresholds(min_area=1))
    assert matched_fraction(whole, tiled, 0.99) < 0.98
    assert "raise the context" in caplog.text


@pytest.mark.parametrize("shape", [(600, 700, 3), (1027, 300, 1)])  # 1027 = 4 bands of 256 rows + 3
def test_lazy_tiffs_read_like_the_array(tmp_path, shape):
    image = (np.random.default_rng(0).random(shape) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "plain.tif", image)  # uncompressed: memory-mapped
    tifffile.imwrite(tmp_path / "tiled.tif", image, tile=(128, 128), compression="zlib")  # read by tile
    for name in ("plain.tif", "tiled.tif"):
        source = open_image(tmp_path / name)
        assert not isinstance(source.array, np.ndarray) or isinstance(source.array, np.memmap)
        np.testing.assert_array_equal(source.read(100, 300, 50, 290), image[100:300, 50:290])
        np.testing.assert_array_equal(source.read(1, 4, 2, 5), image[1:4, 2:5])  # regions may be tiny
        assert source.appearance == appearance(pixel_sample(image))
        source.close()


def test_streamed_tiff_equals_in_memory_labels(tmp_path):
    truth = many_discs((900, 700))
    tifffile.imwrite(tmp_path / "discs.tif", encoded_image(truth), tile=(256, 256), compression="zlib")
    source = open_image(tmp_path / "discs.tif")
    bands = label_bands(source, EncodedProbabilities(), tiling(block=256, context=40), Thresholds(min_area=1))
    write_label_ome_tiff(tmp_path / "labels.tif", bands, (900, 700))
    in_memory = label_image(source, EncodedProbabilities(), tiling(block=256, context=40), Thresholds(min_area=1))
    source.close()
    written = tifffile.imread(tmp_path / "labels.tif")
    assert written.dtype == np.uint32 and written.max() == truth.max()
    np.testing.assert_array_equal(written, in_memory)
    assert matched_fraction(truth, written, 0.95) == 1.0


def test_stacks_are_refused_with_the_file_named(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 64, 64, 2), np.uint8))
    from nucleoflow.errors import InputError

    with pytest.raises(InputError, match="stack.tif.*expected one 2D gray, RGB or multichannel image"):
        open_image(tmp_path / "stack.tif")


SHIPPED = model_path("dsb2018_unet")
# The three most crowded DSB2018 training images (250-375 nuclei each).
CROWDED = [
    "a102535b0e88374bea4a1cfd9ee7cb3822ff54f4ab2a9845d428ec22f9ee2288",
    "0ea221716cf13710214dcd331a61cea48308c3940df1d28cfc7fd817c83714e1",
    "cb4df20a83b2f38b394c67f1d9d4aef29f9794d5345da3576318374ec3a11490",
]


def whole_and_blocked(segmenter, image):
    """Labels of the image whole (one block) and in blocks of 160 px with 64 px of context."""
    segmenter.tiling = Tiling(block=4096, context=0, tta=False)
    whole = segmenter(image)
    segmenter.tiling = Tiling(block=160, context=64, tta=False)
    return whole, segmenter(image)


def crowded_mosaic(crops_zip):
    """The four most crowded committed crops (fluorescence, 54-73 nuclei each) as one 512 px image:
    block borders cross each crop and the seams between them."""
    stems = pd.read_csv(crops_zip.parent / "crops.csv").sort_values("n_nuclei", ascending=False)["stem"][:4]
    with zipfile.ZipFile(crops_zip) as archive:
        gray = [to_hwc(decode_image(archive.read(f"images/{s}.png"), s), s).mean(axis=-1).astype(np.uint8) for s in stems]
    return np.block([gray[:2], gray[2:]])


def test_shipped_model_labels_without_seams_on_committed_crops(crops_zip):
    """Blocks of 160 px give the whole image's nuclei on a crowded real image."""
    whole, tiled = whole_and_blocked(Segmenter(SHIPPED), crowded_mosaic(crops_zip))
    assert whole.max() > 200  # the four crops hold 242 nuclei
    assert matched_fraction(whole, tiled, 0.99) >= 0.99


@pytest.mark.realdata
def test_shipped_model_labels_without_seams_on_real_images(dsb_zip):
    """As above on the three most crowded full images of the archive (250-375 nuclei each)."""
    segmenter = Segmenter(SHIPPED)
    fractions = []
    with zipfile.ZipFile(dsb_zip) as archive:
        for image_id in CROWDED:
            name = f"{image_id}/images/{image_id}.png"
            whole, tiled = whole_and_blocked(segmenter, to_hwc(decode_image(archive.read(name), name), name))
            assert whole.max() > 150
            fractions.append(matched_fraction(whole, tiled, 0.99))
    assert min(fractions) >= 0.99, fractions


def test_segmenter_uses_the_thresholds_tuned_for_the_images_modality(tmp_path):
    """A card with histology thresholds that keep nothing: a colour image (histology, told from
    its pixels) gets them and no nuclei; a gray one (fluorescence) gets the global values."""
    from nucleoflow.model import load_model, save_model

    model, metadata = load_model(SHIPPED)
    postprocess = {**metadata["postprocess"], "modality": {"histology": {"min_area": 10**6}}}
    save_model(model, tmp_path / "model.pt", **{**metadata, "postprocess": postprocess})
    segmenter = Segmenter(tmp_path / "model.pt")
    nuclei = discs(shape=(128, 160), radius=8) > 0
    gray = np.where(nuclei, 200, 20).astype(np.uint8)
    colour = np.stack([np.where(nuclei, 90, 240), np.where(nuclei, 40, 180), np.where(nuclei, 140, 220)], axis=-1).astype(np.uint8)
    assert segmenter(gray).max() == 4
    assert segmenter(colour).max() == 0
    assert Segmenter(tmp_path / "model.pt", min_area=5)(colour).max() == 4  # a keyword overrides both


@pytest.fixture
def created_segments(monkeypatch):
    """The names of the shared memory segments nucleoflow.pool creates during the test, in
    order. Its buffers are created in this process only (workers attach to them by name), so
    these are all the segments the test's process tree makes; other processes' segments in
    /dev/shm (a training, another test run) are left out of its checks."""
    created = []

    class Recorded(SharedMemory):
        def __init__(self, name=None, create=False, size=0, **options):
            super().__init__(name, create, size, **options)
            if create:
                created.append(self.name)

    monkeypatch.setattr(pool, "SharedMemory", Recorded)
    return created


def left_in_shm(names):
    """Those of the segments `names` still in /dev/shm (not unlinked)."""
    return [name for name in names if (SHM / name).exists()]


def label_in_blocks(crops_zip, workers, on_block=None):
    """The crowded mosaic labelled by the shipped model in 16 blocks of 128 px (32 px of context)."""
    segmenter = Segmenter(SHIPPED)
    source = RegionSource(crowded_mosaic(crops_zip), "mosaic")
    tiling = Tiling(tile=256, block=128, context=32, tta=False)
    bands = label_bands(source, segmenter.engine, tiling, segmenter.thresholds_for(source), on_block=on_block, workers=workers)
    return np.concatenate([rows for _, rows in bands])


def test_blocks_labelled_by_two_workers_equal_one(crops_zip, created_segments):
    """Two processes label the blocks while the network predicts: the same labels, numbered alike,
    and the same nuclei handed to on_block in the same order; no process or shared memory is left."""
    calls = {1: [], 2: []}
    children = {1: set(), 2: set()}

    def recorder(workers):
        def on_block(labels, origin):
            calls[workers].append((origin, labels.copy()))
            children[workers].add(len(multiprocessing.active_children()))

        return on_block

    one, two = (label_in_blocks(crops_zip, workers, recorder(workers)) for workers in (1, 2))
    assert one.max() > 200 and len(calls[1]) >= 16  # every block holds nuclei of its own
    np.testing.assert_array_equal(two, one)
    assert [origin for origin, _ in calls[2]] == [origin for origin, _ in calls[1]]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(calls[1], calls[2]))
    assert children == {1: {0}, 2: {2}}  # labelled here with one worker, by two processes with two
    assert created_segments and left_in_shm(created_segments) == []  # blocks went through shared memory, all unlinked
    assert multiprocessing.active_children() == []


def test_an_interrupt_stops_the_workers_and_frees_their_memory(crops_zip, created_segments):
    def interrupt(labels, origin):
        if origin[0] > 0:  # the first block row done, later ones in the workers
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_in_blocks(crops_zip, 2, interrupt)
    assert created_segments and left_in_shm(created_segments) == []
    assert multiprocessing.active_children() == []


def test_a_segmenter_keeps_its_workers_from_one_image_to_the_next(crops_zip):
    """Starting workers takes seconds: a Segmenter starts them once, for the images it labels,
    and stops them when closed."""
    mosaic = crowded_mosaic(crops_zip)
    options = dict(tile=256, block=128, context=32, tta=False)
    with Segmenter(SHIPPED, **options) as alone:
        expected = [alone(mosaic), alone(mosaic[::-1])]
    with Segmenter(SHIPPED, workers=2, **options) as segmenter:
        labels = [segmenter(mosaic)]
        first = {p.pid for p in multiprocessing.active_children()}
        labels.append(segmenter(mosaic[::-1]))
        assert {p.pid for p in multiprocessing.active_children()} == first and len(first) == 2
    assert all(np.array_equal(a, b) for a, b in zip(labels, expected))
    assert multiprocessing.active_children() == []


def test_blocks_that_find_no_room_in_shared_memory_are_labelled_here(crops_zip, created_segments, monkeypatch, caplog):
    """/dev/shm as small as in a Docker container (64 MB by default; here 1 MB, room for two of
    the mosaic's 0.4 MB blocks): past its end a write would kill the process, so the blocks that
    find no free buffer are labelled in the main process, with the same labels."""
    real = shutil.disk_usage

    def ours():  # sizes of this test's segments not yet unlinked
        return [(SHM / name).stat().st_size for name in left_in_shm(created_segments)]

    def disk_usage(path):  # the file system's answer, its free space cut to 1 MB less what the blocks take
        usage = real(path)
        return usage._replace(free=2**20 - sum(ours())) if Path(path) == SHM else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    calls = []
    labels = label_in_blocks(crops_zip, 2, lambda labels, origin: calls.append(len(ours())))
    monkeypatch.setattr(shutil, "disk_usage", real)
    np.testing.assert_array_equal(labels, label_in_blocks(crops_zip, 1))
    assert max(calls) == 2 and caplog.text.count("labelled in this process") == 1
    assert multiprocessing.active_children() == [] and ours() == []


INTERRUPTED = """
import multiprocessing, os, signal, sys, time
import numpy as np
from nucleoflow.blocks import label_probability_bands
from nucleoflow.options import Tiling
from nucleoflow.pool import Workers

probs = np.eye(3, dtype=np.float32)[(np.indices((1024, 1024)) // 16).sum(axis=0) % 2].transpose(2, 0, 1)  # a checkerboard of nuclei


def interrupt(labels, origin):
    if origin[0] > 0:
        time.sleep(1)  # the workers label the blocks sent and wait, as while the network predicts the next ones
        os.kill(os.getpid(), signal.SIGKILL) if sys.argv[1] == "kill" else os.killpg(os.getpgrp(), signal.SIGINT)  # Ctrl-C hits the group


with Workers(2) as workers:
    for on_block in (None, interrupt):  # the first image starts the workers
        for _ in label_probability_bands(iter([(0, probs)]), probs.shape[1:], Tiling(block=128, context=16), on_block=on_block, workers=workers):
            pass
        print(*[p.pid for p in multiprocessing.active_children()], flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads process states in /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_ctrl_c_or_a_killed_main_process_leaves_no_workers(how):
    """Ctrl-C reaches the workers too: they leave it to the main process, which stops them (one
    traceback, not one per worker); a main process killed outright takes its workers with it
    (else idle ones wait forever, holding its output pipes open)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", INTERRUPTED, how]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, start_new_session=True, preexec_fn=default_sigint)
    workers = [int(pid) for pid in run.stdout.split()]
    assert len(workers) == 2 and run.returncode == (-signal.SIGKILL if how == "kill" else -signal.SIGINT)
    if how == "ctrl-c":
        assert run.stderr.count("Traceback") == 1 and run.stderr.rstrip().endswith("KeyboardInterrupt")
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in workers):
        assert time.monotonic() < deadline, "workers left running"
        time.sleep(0.1)
