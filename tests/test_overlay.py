"""The `overlay` output (issue 22, item 3): each image with its nuclei outlined, at most 2048 px a
side with bounded memory, and the output folder's index.html (the summary table with a thumbnail
of each overlay), on committed DSB2018 crops, in a browser where Chromium is installed."""

import base64
import csv
import io
import re
import tracemalloc
import zipfile

import jsonschema
import numpy as np
import pytest
import tifffile
import yaml
from conftest import CROPS, ROOT
from PIL import Image
from skimage.segmentation import find_boundaries
from test_cli import cli
from test_workflow import chromium

from nucleoflow.cli import parser
from nucleoflow.outputs import OUTPUTS, output_name
from nucleoflow.overlay import INDEX, MAX_SIDE, THUMBNAIL, Overlay
from nucleoflow.region import RegionSource
from nucleoflow.segment import check_outputs, gather_shards, segment_folder

YELLOW = (255, 255, 0)


def outline_mask(png):
    """The pixels of an overlay PNG drawn in the outline colour."""
    pixels = np.asarray(Image.open(png).convert("RGB"))
    return np.all(pixels == YELLOW, axis=-1)


@pytest.fixture(scope="module")
def three_crops(crops_zip, tmp_path_factory):
    """Two fluorescence crops and a histology one (crops.csv's modalities) in a folder, with a
    text file that is skipped."""
    with open(CROPS / "crops.csv", newline="") as file:
        modality = {row["stem"]: row["modality"] for row in csv.DictReader(file)}
    stems = [s for s in sorted(modality) if modality[s] == "fluorescence"][:2] + [s for s in sorted(modality) if modality[s] == "histology"][:1]
    folder = tmp_path_factory.mktemp("overlay") / "images"
    folder.mkdir()
    with zipfile.ZipFile(crops_zip) as archive:
        for stem in stems:
            (folder / f"{stem}.png").write_bytes(archive.read(f"images/{stem}.png"))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def segmented(three_crops):
    """`nucleoflow segment --outputs labels overlay` on the three crops."""
    out = three_crops.parent / "out"
    result = cli("segment", str(three_crops), "-o", str(out), "--outputs", "labels", "overlay", "--no-tta", "--threads", "2", cwd=three_crops.parent)
    assert result.returncode == 0, result.stderr
    return out


def test_overlay_outlines_every_nucleus_on_the_image(three_crops, segmented):
    for image in sorted(three_crops.glob("*.png")):
        labels = tifffile.imread(segmented / f"{image.stem}.tif")
        png = segmented / output_name(image.stem, "overlay")
        assert png.exists() and labels.max() > 3, png
        drawn = outline_mask(png)
        assert drawn.shape == labels.shape  # the crops are small: full resolution
        boundaries = find_boundaries(labels, mode="inner")
        assert np.array_equal(drawn & boundaries, boundaries), "an outline pixel is not drawn"
        assert (drawn & ~boundaries).sum() <= 0.001 * drawn.size, "yellow away from the outlines"
        assert set(np.unique(labels[drawn & boundaries])) == set(np.unique(labels)) - {0}  # every nucleus outlined
        # Elsewhere the overlay is the image itself, contrast-stretched.
        shown = np.asarray(Image.open(png).convert("RGB"))[..., 0][~boundaries].astype(float)
        original = np.asarray(Image.open(image).convert("RGB"))[..., 0][~boundaries].astype(float)
        assert np.corrcoef(shown, original)[0, 1] > 0.9


def index_rows(page):
    """(thumbnail data URI or None, link or None, cell texts) of each row of the index's table."""
    body = page.split('<table id="summary">')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        link = re.search(r'<a href="([^"]+)"><img src="(data:image/[^"]+)"', row)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[1:]
        rows.append((link.group(2) if link else None, link.group(1) if link else None, cells))
    return rows


def test_index_page_lists_the_summary_with_a_thumbnail_linking_to_each_overlay(three_crops, segmented):
    page = (segmented / INDEX).read_text()
    assert "<script" not in page
    rows = index_rows(page)
    with open(segmented / "summary.csv", newline="") as file:
        summary = list(csv.DictReader(file))
    assert [cells[0] for _, _, cells in rows] == [row["image"] for row in summary]  # the table's rows, in order
    for (thumbnail, link, cells), row in zip(rows, summary):
        if row["status"] == "segmented":
            stem = row["image"].removesuffix(".png")
            assert link == f"{stem}.overlay.png" and (segmented / link).exists()
            assert row["nuclei"] in cells
            image = Image.open(io.BytesIO(base64.b64decode(thumbnail.split(",", 1)[1])))
            assert max(image.size) <= THUMBNAIL
        else:
            assert row["image"] == "notes.txt" and thumbnail is None and row["status"] in cells
    assert sum(t is not None for t, _, _ in rows) == 3


def test_index_page_in_a_browser_shows_the_table_and_the_thumbnails(segmented, tmp_path):
    """Headless Chromium (skipped, saying so, where it is not installed) renders the page: the
    table's four rows, three thumbnails that load (their natural size is known only once decoded),
    each inside a link to its overlay; and a screenshot that is not blank."""
    uri = (segmented / INDEX).as_uri()
    dom = chromium("--dump-dom", uri).stdout
    table = dom.split('id="summary"')[1].split("</table>")[0]
    assert len(re.findall(r"<tr", table.split("<tbody>")[1])) == 4
    links = re.findall(r'<a href="([^"]+\.overlay\.png)"><img src="data:image/jpeg;base64,', table)
    assert len(links) == 3 and all((segmented / link).exists() for link in links)
    chromium(f"--screenshot={tmp_path / 'index.png'}", "--window-size=1400,1000", "--hide-scrollbars", uri)
    pixels = np.asarray(Image.open(tmp_path / "index.png").convert("RGB")).astype(int)
    dark = (pixels.max(-1) < 60).sum()  # the fluorescence thumbnails' background
    outline = ((pixels[..., 0] > 150) & (pixels[..., 1] > 150) & (pixels[..., 2] < 100)).sum()  # yellow, softened by the thumbnail
    assert dark > 2 * 100 * 100 and outline > 50, (dark, outline)


def test_shards_and_their_gather_write_one_index_for_all_images(three_crops, tmp_path):
    shards = [tmp_path / "shards" / f"{k}-of-2" for k in (1, 2)]
    for k, shard in enumerate(shards, 1):
        segment_folder(three_crops, shard, "dsb2018_unet", shard=(k, 2), outputs=["labels", "overlay"], tta=False, threads=2)
        assert (shard / INDEX).exists()
    gather_shards(shards, tmp_path / "segment")
    rows = index_rows((tmp_path / "segment" / INDEX).read_text())
    assert [cells[0] for _, _, cells in rows] == sorted(p.name for p in three_crops.iterdir())
    assert [link for _, link, _ in rows if link] == [f"{p.stem}.overlay.png" for p in sorted(three_crops.glob("*.png"))]
    with open(tmp_path / "segment" / "summary.csv", newline="") as file:
        counts = {row["image"]: row["nuclei"] for row in csv.DictReader(file)}
    assert counts.pop("notes.txt") == "" and all(n.isdigit() for n in counts.values()), counts  # integers beside the skipped row


# ---------------------------------------------------------------- huge images: reduced, bounded memory

CELL = 40  # side of the synthetic image's squares; the bright ones are nuclei


def bright(rows, columns):
    """Whether the pixels at the given image rows and columns (1-D index arrays) are on a bright square."""
    return ((np.asarray(rows) // CELL) % 2 == 1)[:, None] != ((np.asarray(columns) // CELL) % 2 == 1)[None, :]


def square_labels(rows, columns):
    """Labels of the bright squares at the given image rows and columns (built in place: the
    test's own bands cost little beside what it measures)."""
    ids = (np.asarray(rows, np.uint32) // CELL)[:, None] * np.uint32(10_000) + (np.asarray(columns, np.uint32) // CELL)[None, :]
    ids += 1
    ids *= bright(rows, columns)
    return ids


class Squares:
    """A lazy (H, W) uint8 image of CELL px squares, bright (nuclei) and dark, built region by
    region as RegionSource reads it: there is no full-resolution array anywhere."""

    def __init__(self, shape):
        self.shape, self.dtype, self.ndim = shape, np.dtype(np.uint8), 2

    def __getitem__(self, index):
        ys, xs = index
        return np.where(bright(np.arange(ys.start, ys.stop), np.arange(xs.start, xs.stop)), np.uint8(200), np.uint8(20))


def label_bands(shape, rows=256):
    for top in range(0, shape[0], rows):
        yield top, square_labels(np.arange(top, min(top + rows, shape[0])), np.arange(shape[1]))


@pytest.mark.parametrize("shape", [(16384, 12288), (5000, 3001)])
def test_overlay_of_a_huge_image_is_reduced_to_max_side_with_bounded_memory(tmp_path, shape):
    """A 16384x12288 image (its labels alone 768 MiB at full resolution) gets an overlay of
    2048x1536 px made while the label bands stream past, in under 100 MiB of allocations; an odd
    size whose bands do not fall on the reduced grid gets the outlines at the right rows."""
    source = RegionSource(Squares(shape), "squares.tif")
    tracemalloc.start()
    try:
        overlay = Overlay(shape)
        for _ in overlay.tap(label_bands(shape)):
            pass
        overlay.write(tmp_path / "squares.overlay.png", source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    k = overlay.stride
    assert k == -(-max(shape) // MAX_SIDE)
    drawn = outline_mask(tmp_path / "squares.overlay.png")
    assert drawn.shape == (-(-shape[0] // k), -(-shape[1] // k)) and max(drawn.shape) <= MAX_SIDE
    expected = find_boundaries(square_labels(np.arange(0, shape[0], k), np.arange(0, shape[1], k)), mode="inner")
    assert np.array_equal(drawn, expected)
    if shape == (16384, 12288):
        assert max(drawn.shape) == MAX_SIDE
        assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------- one name, everywhere outputs are listed


def test_overlay_is_accepted_wherever_the_outputs_are_named():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["segment"]["properties"]["outputs"]["items"]["enum"] == list(OUTPUTS)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    jsonschema.validate({**config, "segment": {**config["segment"], "outputs": ["labels", "overlay"]}}, schema)
    comment = (ROOT / "config" / "config.yaml").read_text().split("\nsegment:")[1].split("  outputs:")[0]
    assert all(name in comment for name in OUTPUTS)
    args = parser().parse_args(["segment", "in", "-o", "out", "--outputs", "labels", "overlay"])
    assert args.outputs == ["labels", "overlay"]
    check_outputs(["overlay"], "segment.outputs")  # the library's check
    readme = (ROOT / "README.md").read_text()
    assert "| `overlay` | `<stem>.overlay.png`" in readme and "index.html" in readme
