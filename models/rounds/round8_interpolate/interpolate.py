"""Weights between the shipped model and a model fine-tuned from it (WiSE-FT, Wortsman et al.
2022: fine-tuned and starting weights mixed linearly, batch-norm statistics included), scored on
the validation crops as best_epoch scores epochs:

    python models/rounds/round8_interpolate/interpolate.py FINE_TUNED.pt OUT_DIR [--alphas 0 0.25 0.5 0.75 1]

run from the repository root (results/data: the preprocess rule's folder). alpha is the
fine-tuned model's share (0: the shipped model, 1: the fine-tuned one). Writes OUT_DIR/scores.csv
and OUT_DIR/alpha_<a>.pt for each alpha, with the fine-tuned model's card and the mix recorded.
"""

import argparse
from pathlib import Path

import pandas as pd
import torch

from nucleoflow.best_epoch import score_epoch
from nucleoflow.crops import load_split, validation_crops
from nucleoflow.device import pick_device, prepare, torch_threads
from nucleoflow.heads import head_of
from nucleoflow.model import load_model, save_model

DATA = Path("results/data")


def mixed(start, tuned, alpha):
    """tuned's architecture with (1 - alpha) * start + alpha * tuned of every float tensor
    (weights and batch-norm running statistics; counters are tuned's)."""
    model, _ = load_model(tuned)
    a, b = load_model(start)[0].state_dict(), model.state_dict()
    model.load_state_dict({k: torch.lerp(a[k], v, alpha) if v.is_floating_point() else v for k, v in b.items()})
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tuned")
    parser.add_argument("out", type=Path)
    parser.add_argument("--start", default="dsb2018_unet")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tuned, card = load_model(args.tuned)
    head, train = head_of(tuned.config), card["train"]
    crops = validation_crops(load_split(DATA, pd.read_csv(DATA / "manifest.csv"), "val", train["targets"], head.name), train["crop_size"])
    device, rows = pick_device(), []
    with torch_threads(2):
        for alpha in args.alphas:
            model = mixed(args.start, args.tuned, alpha)
            rows.append({"alpha": alpha, "val_dsb (crops)": score_epoch(prepare(model, device), crops, device, train["batch_size"], head)})
            save_model(model, args.out / f"alpha_{alpha:g}.pt", **card, interpolated={"start": args.start, "fine_tuned": args.tuned, "alpha": alpha})
            print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(args.out / "scores.csv", index=False)


if __name__ == "__main__":
    main()
