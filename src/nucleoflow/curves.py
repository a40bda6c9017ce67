"""Training curves (kept apart from the evaluation figures so editing those never retrains)."""

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .atomic import atomic_path


def new_figure(**kwargs):
    """A Figure drawn by Agg, without pyplot: no global backend switch and no figure registry
    in the caller's process (matplotlib.use would change both)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix[1:], dpi=110, bbox_inches="tight")


def plot_history(history, path):
    save_figure(history_figure(history), path)


def history_figure(history):
    """Loss and validation score per epoch, the kept epoch marked."""
    fig = new_figure(figsize=(10, 4))
    ax_loss, ax_score = fig.subplots(1, 2)
    ax_loss.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    ax_loss.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss (CE + soft Dice)", title="Loss")
    ax_loss.legend()
    ax_score.plot(history["epoch"], history["val_dsb"], marker="o", color="tab:green")
    best = history["val_dsb"].idxmax()
    ax_score.axvline(history["epoch"][best], color="gray", ls="--", label=f"best epoch {history['epoch'][best]}")
    ax_score.set(xlabel="epoch", ylabel="DSB score (validation crops)", title="Validation score", ylim=(0, 1))
    ax_score.legend()
    for ax in (ax_loss, ax_score):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    return fig
