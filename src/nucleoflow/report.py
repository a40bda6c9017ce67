"""The evaluation report: two self-contained HTML pages (index.html, measurements.html) that show
how good the model is and what it found: scores per split and modality, per-image results, an
overlay gallery per modality, the model card and thresholds, nucleus counts and sizes per image.

Plain HTML with the images inside (data URIs), no JavaScript: every number is visible in any
browser, offline; each page is one file to share, and `snakemake --report` embeds both.
"""

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from matplotlib.figure import Figure
from PIL import Image
from skimage.segmentation import find_boundaries

from .atomic import atomic_path
from .curves import history_figure, new_figure
from .lineage import summary
from .prepared import read_prepared
from .robustness import TARGET as ROBUSTNESS_TARGET
from .scores import THRESHOLDS

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; }
figure img { width: 260px; height: 260px; object-fit: contain; background: #000; }
.full { display: none; position: fixed; inset: 0; overflow: auto; background: rgba(0, 0, 0, 0.9); }
.full:target { display: block; }
.full img { display: block; margin: 0 auto; }
.full a { color: #fff; }
figcaption { font-size: 0.85em; max-width: 260px; }
img.figure { max-width: 100%; }
nav a { margin-right: 1em; }
#card td { text-align: left; }
"""


def score_vs_iou_figure(summary):
    """AP = TP/(TP+FP+FN) against the IoU threshold, per split and modality."""
    splits = sorted(summary["split"].unique())
    fig = new_figure(figsize=(5 * len(splits), 4))
    for i, split in enumerate(splits, 1):
        ax = fig.add_subplot(1, len(splits), i)
        for _, row in summary[summary["split"] == split].iterrows():
            values = [row[f"ap_{t:.2f}"] for t in THRESHOLDS]
            ax.plot(THRESHOLDS, values, marker="o", label=f"{row['modality']} (n={row['n_images']}, DSB {row['dsb']:.3f})")
        ax.set(xlabel="IoU threshold", ylabel="mean AP per image", title=f"{split} split", ylim=(0, 1))
        ax.legend(fontsize=8)
    return fig


def robustness_figure(table):
    """DSB per robustness variant beside the unchanged images it derives from, each marked with
    what it would score were it labelled as well as those (what the pixel size alone costs)."""
    fig = new_figure(figsize=(7, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(table)), table["DSB"], color=["tab:gray" if v == 0 else "tab:blue" for v in table["DSB - unchanged"].fillna(1)])
    ax.scatter(range(len(table)), table["DSB if labelled as unchanged"], marker="_", s=400, color="black", label="if labelled as well as unchanged")
    ax.set_xticks(range(len(table)), table["variant"], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="DSB (validation)", ylim=(0, 1), title="Scores on rescaled and stain-jittered validation images")
    ax.legend(fontsize=8, loc="upper right")
    return fig


def distribution_figure(per_image):
    """Per-image DSB score by modality (box plot with every image as a dot)."""
    splits = sorted(per_image["split"].unique())
    fig = new_figure(figsize=(5 * len(splits), 4))
    rng = np.random.default_rng(0)
    for i, split in enumerate(splits, 1):
        ax = fig.add_subplot(1, len(splits), i)
        frame = per_image[per_image["split"] == split]
        modalities = sorted(frame["modality"].unique())
        values = [frame.loc[frame["modality"] == m, "dsb"].to_numpy() for m in modalities]
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(modalities) + 1), [f"{m}\n(n={len(v)})" for m, v in zip(modalities, values)])
        for j, v in enumerate(values, 1):
            ax.scatter(j + rng.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.6)
        ax.set(ylabel="DSB score per image", title=f"{split} split", ylim=(0, 1))
    return fig


def overlay(data_dir, labels_dir, image_id):
    """The image at full resolution with predicted contours (yellow) and true ones (cyan), uint8 RGB."""
    image = read_prepared(Path(data_dir) / "images" / f"{image_id}.tif").astype(np.float32)
    lo, hi = np.percentile(image, [1, 99.8])
    rgb = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb
    rgb[find_boundaries(tifffile.imread(Path(data_dir) / "labels" / f"{image_id}.tif"), mode="inner")] = (0, 1, 1)
    rgb[find_boundaries(tifffile.imread(Path(labels_dir) / f"{image_id}.tif"), mode="inner")] = (1, 1, 0)
    return (rgb * 255).astype(np.uint8)


def gallery_picks(per_image):
    """{modality: [(best|median|worst, row)]} by DSB, on the test split where there is one."""
    test = per_image[per_image["split"] == "test"]
    frame = test if len(test) else per_image
    picks = {}
    for modality, rows in frame.groupby("modality"):
        ranked = rows.sort_values("dsb", ascending=False).reset_index(drop=True)
        names = {}  # one or two images: each shown once, with all its names
        for name, index in (("best", 0), ("median", len(ranked) // 2), ("worst", len(ranked) - 1)):
            names.setdefault(index, []).append(name)
        picks[modality] = [(" = ".join(n), ranked.iloc[index]) for index, n in names.items()]
    return picks


def nucleus_areas(labels_dir, ids):
    """One row per predicted nucleus: image id and area in pixels."""
    frames = []
    for image_id in ids:
        areas = np.bincount(tifffile.imread(Path(labels_dir) / f"{image_id}.tif").ravel())[1:]
        frames.append(pd.DataFrame({"id": image_id, "area": areas[areas > 0]}))
    return pd.concat(frames, ignore_index=True)


def measurements_figure(per_image, areas):
    """Per image: nuclei found vs true (bars) and the size distribution of the nuclei found (boxes),
    images ordered by modality and count."""
    order = per_image.sort_values(["modality", "n_pred"])
    by_image = [areas.loc[areas["id"] == i, "area"].to_numpy() for i in order["id"]]
    x = np.arange(len(order))
    fig = new_figure(figsize=(max(8, 0.18 * len(order)), 7))
    counts, sizes = fig.subplots(2, 1, sharex=True)
    counts.bar(x - 0.2, order["n_pred"], 0.4, label="found")
    counts.bar(x + 0.2, order["n_true"], 0.4, label="true")
    counts.set(ylabel="nuclei per image", title="Nucleus count per image")
    counts.legend()
    sizes.boxplot([b if len(b) else [np.nan] for b in by_image], positions=x, widths=0.6, showfliers=False)
    sizes.set(ylabel="nucleus area (pixels)", yscale="log", title="Nucleus size per image (found nuclei)")
    sizes.set_xticks(x, [f"{m[:4]} {i[:6]}" for m, i in zip(order["modality"], order["id"])], rotation=90, fontsize=6)
    return fig


def _table(frame, table_id, floats="{:.3f}"):
    return frame.to_html(index=False, table_id=table_id, border=0, float_format=floats.format, escape=True)


def _page(title, body):
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style>'
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head>\n<body>{body}</body></html>\n'


def _nav():
    return '<nav><a href="index.html">Scores and gallery</a><a href="measurements.html">Measurements</a></nav>'


def headline(summary):
    """Scores per split and modality, as the headline table shows them."""
    frame = summary[["split", "modality", "n_images", "dsb", "ap_0.50", "ap_0.75", "ap_pooled_0.50", "f1_0.50"]]
    return frame.rename(
        columns={"n_images": "images", "dsb": "DSB", "ap_0.50": "AP@0.5", "ap_0.75": "AP@0.75", "ap_pooled_0.50": "AP@0.5 pooled", "f1_0.50": "F1@0.5"}
    )


def _card_rows(card, thresholds):
    rows = {
        "architecture": card.get("config"),
        "training": card.get("train"),
        "best epoch": card.get("epoch"),
        "validation DSB (crops)": card.get("val_dsb"),
        "device": card.get("device"),
        "training time (s)": card.get("training_time_s"),
        "training rounds": summary(card["lineage"]) if card.get("lineage") else None,
        "postprocess thresholds": thresholds,
    }
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(json.dumps(v))}</code></td></tr>" for k, v in rows.items() if v is not None)
    return f'<table id="card">{cells}</table>'


def _png(image):
    """A data URI of a PNG of a Figure or a uint8 RGB array."""
    buffer = io.BytesIO()
    if isinstance(image, Figure):
        image.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    else:
        Image.fromarray(image).save(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _thumbnail(rgb, side=260):
    image = Image.fromarray(rgb)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _gallery(per_image, data_dir, labels_dir):
    """Thumbnails per modality; a click shows the overlay at full resolution (CSS :target)."""
    sections = []
    for modality, picks in gallery_picks(per_image).items():
        figures = []
        for name, row in picks:
            rgb = overlay(data_dir, labels_dir, row["id"])
            anchor = html.escape(f"full-{row['id']}")
            caption = f"{name}: DSB {row['dsb']:.3f}, {row['n_pred']} found / {row['n_true']} true<br><small>{html.escape(row['id'])}</small>"
            figures.append(
                f'<figure><a href="#{anchor}"><img src="{_png(_thumbnail(rgb))}" alt="{html.escape(name)} {html.escape(modality)}"></a>'
                f"<figcaption>{caption}</figcaption></figure>"
                f'<div class="full" id="{anchor}"><a href="#gallery">close</a><img src="{_png(rgb)}" alt="{html.escape(row["id"])}"></div>'
            )
        sections.append(f'<h3>{html.escape(modality)}</h3><div class="gallery">{"".join(figures)}</div>')
    return "".join(sections)


def _write(path, title, body):
    with atomic_path(path) as tmp:
        tmp.write_text(_page(title, body))


def _robustness(table):
    """The robustness section: the variants' table and bars, and whether the worst is within target."""
    worst = table.dropna(subset=["DSB - unchanged"]).sort_values("DSB - unchanged").iloc[0]
    verdict = "within" if worst["DSB - unchanged"] >= -ROBUSTNESS_TARGET else "<strong>not within</strong>"
    return f"""<h2>Robustness: other scales and stains</h2>
<p>The packaged model on the validation images rescaled (nuclei 0.5-2x as large) and, for the colour
images, stain-jittered; no test-time augmentation. Worst variant: {html.escape(worst["variant"])},
{worst["DSB - unchanged"]:+.3f} DSB, {verdict} {ROBUSTNESS_TARGET} of the unchanged images. A black mark
(column "DSB if labelled as unchanged") is what a variant would score were its images labelled
exactly as well as unchanged: the unchanged labels mapped to its grid as its truth is. Below the
unchanged images' bar, that gap is the metric's (nuclei spanning fewer pixels lose more IoU to a
one-pixel boundary), not the model's.</p>
{_table(table, "robustness")}
<img class="figure" src="{_png(robustness_figure(table))}" alt="DSB per robustness variant">"""


def write_report(index_path, measurements_path, per_image, summary, data_dir, labels_dir, history, card, thresholds, source, robustness=None):
    """Write the two pages. thresholds: the JSON of the thresholds used (options.ThresholdSet.to_json());
    source: where the data came from; robustness: the robustness rule's table (a section when given)."""
    table = per_image[["id", "split", "modality", "n_pred", "n_true", "dsb", "ap_0.50"]].sort_values(["split", "dsb"])
    table = table.rename(columns={"n_pred": "nuclei found", "n_true": "nuclei true", "dsb": "DSB", "ap_0.50": "AP@0.5"})
    index = f"""<h1>Nucleus segmentation: how good is it?</h1>{_nav()}
<p>Data: <code>{html.escape(str(source))}</code>. DSB: mean over images of the mean over IoU thresholds 0.50-0.95 of
TP/(TP+FP+FN) (the 2018 Data Science Bowl score); AP@t: TP/(TP+FP+FN) at IoU t, mean per image or pooled over images.</p>
<h2>Scores per split and modality</h2>{_table(headline(summary), "headline")}
<img class="figure" src="{_png(score_vs_iou_figure(summary))}" alt="score against IoU threshold">
<img class="figure" src="{_png(distribution_figure(per_image))}" alt="DSB per image">
<h2>Gallery: best, median and worst image per modality</h2>
<p>Predicted nuclei in yellow, true ones in cyan; click an image for full resolution.</p>
<div id="gallery">{_gallery(per_image, data_dir, labels_dir)}</div>
{_robustness(robustness) if robustness is not None else ""}
<h2>Model and thresholds</h2>{_card_rows(card, thresholds)}
<img class="figure" src="{_png(history_figure(history))}" alt="training curves">
<h2>Per image</h2>{_table(table, "per-image")}"""
    _write(index_path, "nucleoflow report", index)
    areas = nucleus_areas(labels_dir, per_image["id"])
    stats = areas.groupby("id")["area"].describe()[["count", "25%", "50%", "75%", "max"]].reset_index()
    stats = per_image[["id", "split", "modality", "n_true"]].merge(stats, on="id", how="left").fillna({"count": 0})
    names = {"count": "nuclei found", "n_true": "nuclei true", "25%": "area q25", "50%": "median area", "75%": "area q75", "max": "largest"}
    measurements = f"""<h1>What did it find?</h1>{_nav()}
<p>{len(areas)} nuclei found in {len(per_image)} images; areas in pixels.</p>
<img class="figure" src="{_png(measurements_figure(per_image, areas))}" alt="nucleus count and size per image">
{_table(stats.rename(columns=names).sort_values(["split", "modality", "id"]), "measurements", "{:.0f}")}"""
    _write(measurements_path, "nucleoflow measurements", measurements)
