"""Figures for the evaluation report: score vs IoU, score distributions, overlays."""

from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

from .curves import new_figure, save_figure
from .io import load_hwc
from .metrics import THRESHOLDS


def plot_score_vs_iou(summary, path):
    """AP = TP/(TP+FP+FN) against the IoU threshold, per split and modality."""
    splits = sorted(summary["split"].unique())
    fig = new_figure(figsize=(5 * len(splits), 4))
    axes = fig.subplots(1, len(splits), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for _, row in summary[summary["split"] == split].iterrows():
            values = [row[f"ap_{t:.2f}"] for t in THRESHOLDS]
            ax.plot(THRESHOLDS, values, marker="o", label=f"{row['modality']} (n={row['n_images']}, DSB {row['dsb']:.3f})")
        ax.set(xlabel="IoU threshold", ylabel="mean AP per image", title=f"{split} split", ylim=(0, 1))
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_distribution(per_image, path):
    """Per-image DSB score by modality (box plot with every image as a dot)."""
    splits = sorted(per_image["split"].unique())
    fig = new_figure(figsize=(5 * len(splits), 4))
    axes = fig.subplots(1, len(splits), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, split in zip(axes[0], splits):
        frame = per_image[per_image["split"] == split]
        modalities = sorted(frame["modality"].unique())
        values = [frame.loc[frame["modality"] == m, "dsb"].to_numpy() for m in modalities]
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(modalities) + 1), [f"{m}\n(n={len(v)})" for m, v in zip(modalities, values)])
        for i, v in enumerate(values, 1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.6)
        ax.set(ylabel="DSB score per image", title=f"{split} split", ylim=(0, 1))
    save_figure(fig, path)


def plot_overlays(per_image, data_dir, labels_dir, path):
    """Best, median and worst test images: predicted contours (yellow), ground truth (cyan)."""
    ranked = per_image.sort_values("dsb").reset_index(drop=True)
    picks = {"worst": ranked.iloc[0], "median": ranked.iloc[len(ranked) // 2], "best": ranked.iloc[-1]}
    fig = new_figure(figsize=(15, 5))
    axes = fig.subplots(1, 3)
    for ax, (name, row) in zip(axes, picks.items()):
        image = load_hwc(Path(data_dir) / "images" / f"{row['id']}.tif").astype(np.float32)
        lo, hi = np.percentile(image, [1, 99.8])
        rgb = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
        rgb = np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb
        truth = load_hwc(Path(data_dir) / "labels" / f"{row['id']}.tif")[..., 0]
        pred = load_hwc(Path(labels_dir) / f"{row['id']}.tif")[..., 0]
        rgb[find_boundaries(truth, mode="inner")] = (0, 1, 1)
        rgb[find_boundaries(pred, mode="inner")] = (1, 1, 0)
        ax.imshow(rgb)
        ax.set_title(f"{name}: {row['modality']}, DSB {row['dsb']:.3f}\n{row['id'][:16]}", fontsize=9)
        ax.axis("off")
    save_figure(fig, path)
