"""A quick look at what `segment` found: each image with its nuclei outlined (the `overlay`
output, <stem>.overlay.png) and a page for the whole output folder (index.html) with the
summary table and a thumbnail of each image's overlay that links to it.

Both are plain files: the PNG opens in any image viewer, the page in any browser, offline, with
no JavaScript; the thumbnails are inside the page (data URIs), the overlays beside it.
"""

import base64
import html
import io
import math
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image
from skimage.segmentation import find_boundaries

from .atomic import atomic_path
from .errors import counted

MAX_SIDE = 2048  # an overlay's longer side, at most: larger images are shown at every k-th pixel
COLOUR = (255, 255, 0)  # the outlines: yellow, as the report draws the nuclei it found
INDEX = "index.html"  # the folder's page: no image output ends in .html, so no image can take this name
THUMBNAIL = 160  # a thumbnail's longer side on the page


def stride(shape, max_side=MAX_SIDE):
    """Every how many pixels an image of `shape` (height, width) is shown so its longer side
    is at most `max_side` (1: at full resolution)."""
    return max(1, -(-max(shape) // max_side))


class Overlay:
    """The overlay of one image, made alongside its labels without ever holding the labels or
    the image at full resolution:

        overlay = Overlay((height, width))
        write_label_ome_tiff(path, overlay.tap(bands), ...)   # the label bands pass through
        overlay.write(png_path, source)                       # a reader.RegionSource

    Memory: with k = stride(shape), tap keeps every k-th row and column of the labels as their
    bands stream past (at most MAX_SIDE^2 uint32: 16 MiB) and write reads the image in bands of
    about 256 full-width rows, also keeping every k-th pixel (the uint8 RGB overlay: 12 MiB). So
    beyond those two it holds one band of image rows, as RegionSource.sample reads them to tell
    the image's appearance, and find_boundaries' few copies of the reduced labels: tens of MiB
    for any image size, never the image (a 40000 px square: 1.6 GB a channel) or its labels
    (6.4 GB). Outlines are drawn on the reduced labels, so a nucleus narrower than k pixels
    shows as a dot or not at all: this is a quick look; the labels file is the result."""

    def __init__(self, shape, max_side=MAX_SIDE):
        self.shape = tuple(shape)
        self.stride = stride(self.shape, max_side)
        self.labels = np.zeros(tuple(-(-n // self.stride) for n in self.shape), np.uint32)

    def tap(self, bands):
        """Pass (top, label rows) bands through, keeping every stride-th row and column."""
        k = self.stride
        for top, rows in bands:
            first = (-top) % k  # the band's first row on the reduced grid (image rows 0, k, 2k, ...)
            kept = rows[first::k, ::k]
            y = (top + first) // k
            self.labels[y : y + len(kept)] = kept
            yield top, rows

    def write(self, path, source):
        """The image (source: a reader.RegionSource) at the reduced size, the nuclei's outlines
        drawn on it, as a PNG at path."""
        rgb = reduced_rgb(source, self.stride)
        rgb[find_boundaries(self.labels, mode="inner")] = COLOUR
        Image.fromarray(rgb).save(path, format="png")


def reduced_rgb(source, k):
    """Every k-th pixel of the network's channels of an image, as uint8 RGB scaled between the
    1st and 99.8th percentile of the pixels that tell its appearance (RegionSource.sample, at
    most 512 px a side); read in bands of whole rows, a multiple of k high."""
    lo, hi = np.percentile(source.sample, [1, 99.8])
    scale = 255.0 / max(float(hi - lo), 1e-6)
    rgb = np.empty((-(-source.height // k), -(-source.width // k), 3), np.uint8)
    rows = k * max(1, 256 // k)
    for y in range(0, source.height, rows):
        band = source.read(y, min(y + rows, source.height), 0, source.width)[::k, ::k]  # (h, w, 1 or 3)
        rgb[y // k : y // k + len(band)] = np.clip((band.astype(np.float32) - lo) * scale, 0, 255).astype(np.uint8)
    return rgb


def _thumbnail(path):
    """A data URI of a small JPEG of an overlay PNG."""
    with Image.open(path) as image:
        image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="jpeg", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _cell(value):
    """A summary value as the page shows it: empty for a missing one (a skipped row's counts)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: middle; }
th { background: #f2f2f2; position: sticky; top: 0; }
td.overlay { padding: 2px; text-align: center; background: #000; }
td.overlay img { display: block; }
tr.skipped td { color: #a00; }
"""


def write_index(path, summary, overlay_of):
    """The folder's page at path: summary.csv's table (summary: its DataFrame), each segmented
    image's row led by a thumbnail of its overlay that links to it. overlay_of: an image's name
    in the summary -> its overlay's file name (beside path)."""
    folder = path.parent
    columns = list(summary.columns)
    head = "<tr><th>overlay</th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"
    body = []
    for row in summary.to_dict("records"):
        image = str(row.get("image", ""))
        overlay = overlay_of(image)
        thumbnail = ""
        if str(row.get("status", "segmented")) == "segmented" and (folder / overlay).exists():
            alt = html.escape(f"{image}: nuclei outlined", quote=True)
            thumbnail = f'<a href="{html.escape(quote(overlay), quote=True)}"><img src="{_thumbnail(folder / overlay)}" alt="{alt}"></a>'
        skipped = ' class="skipped"' if str(row.get("status", "")).startswith("skipped") else ""
        cells = "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in columns)
        cell = '<td class="overlay">' if thumbnail else "<td>"
        body.append(f"<tr{skipped}>{cell}{thumbnail}</td>{cells}</tr>")
    title = "Nuclei found by nucleoflow segment"  # not the folder's name: pages are written in a staging folder
    skipped = sum(str(status).startswith("skipped") for status in summary.get("status", []))
    intro = (
        f"<p>{counted(len(summary) - skipped, 'image')} segmented, {skipped} skipped (the reason is in its row); nuclei outlined in yellow. "
        "A thumbnail opens its image's overlay; the labels and the other outputs are beside this page.</p>"
    )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>\n'
        f'<body><h1>{html.escape(title)}</h1>{intro}\n<table id="summary"><thead>{head}</thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table></body></html>\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
