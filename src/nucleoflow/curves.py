"""Training curves (kept apart from the evaluation figures so editing those never retrains)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import atomic_path  # noqa: E402


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix[1:], dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_history(history, path):
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    ax_loss.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss (CE + soft Dice)", title="Loss")
    ax_loss.legend()
    ax_score.plot(history["epoch"], history["val_dsb"], marker="o", color="tab:green")
    best = history["val_dsb"].idxmax()
    ax_score.axvline(history["epoch"][best], color="gray", ls="--", label=f"best epoch {history['epoch'][best]}")
    ax_score.set(xlabel="epoch", ylabel="DSB score (validation crops)", title="Validation score", ylim=(0, 1))
    ax_score.legend()
    save_figure(fig, path)
