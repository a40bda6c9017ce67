"""Train a model like the shipped one within a time budget, on whatever device this machine has.

    python models/train_shipped.py --data results/data --out DIR --budget-s 360 [--set train.modality_balance=1]

How src/nucleoflow/models/dsb2018_unet was trained on a GPU lent for minutes, without Snakemake there. It runs
the train rule's code (nucleoflow.train.train) with config/config.yaml's model and train
settings and the budget as train.budget_min: the first steps are timed on this device and
samples_per_epoch is set so that the epochs fill the budget; then the best_epoch rule's code
(nucleoflow.best_epoch.pick_best) picks the model. On SIGTERM (e.g. `timeout`) the best of the
epochs saved so far is the model. The result then goes through the workflow's tune, evaluate and
package rules (see src/nucleoflow/models/dsb2018_unet/README.md).
"""

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

from nucleoflow.best_epoch import pick_best  # noqa: E402
from nucleoflow.device import pick_device  # noqa: E402
from nucleoflow.logs import setup_logging  # noqa: E402
from nucleoflow.schedule import Training  # noqa: E402
from nucleoflow.train import train  # noqa: E402

log = logging.getLogger("train_shipped")


def train_and_pick(data, out, model_cfg, train_cfg, threads):
    """train, then pick_best: out/model.pt and out/history.csv (the epochs' weights in out/epochs).
    After SIGTERM, the best of the epochs saved so far (out/training), its card saying where the
    run stopped. Returns the history of the epochs run."""
    out = Path(out)
    try:
        train(data, out / "epochs", out / "training", model_cfg, train_cfg, threads=threads)
        return pick_best(out / "epochs", data, out / "model.pt", out / "history.csv", threads=threads)
    except SystemExit:
        if not (out / "training" / "history.csv").exists():
            log.warning("stopped before the first epoch ended: no model; run the same command again to start over")
            raise
        stopped = len(pd.read_csv(out / "training" / "history.csv"))
        log.warning("stopped after epoch %d of %d; the best of those epochs is the model", stopped, train_cfg.epochs)
        return pick_best(out / "training", data, out / "model.pt", out / "history.csv", threads=threads, stopped_after_epoch=stopped)


def parse_sets(sets):
    """SECTION.KEY=VALUE overrides -> {"model": {...}, "train": {...}} (values parsed as YAML)."""
    parsed = {"model": {}, "train": {}}
    for item in sets:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        parsed[section][name] = yaml.safe_load(value)
    return parsed


def config_sections(epochs, sets):
    """config/config.yaml's model and train sections, with `epochs` and SECTION.KEY=VALUE overrides."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    parsed = parse_sets(sets)
    return {**config["model"], **parsed["model"]}, {**config["train"], "epochs": epochs, **parsed["train"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a results/data folder (manifest.csv, images/, labels/)")
    parser.add_argument("--out", required=True, help="folder for model.pt, history.csv and train.log")
    parser.add_argument("--budget-s", type=float, required=True, help="seconds for the training epochs")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a model or train setting")
    args = parser.parse_args()

    model_cfg, train_cfg = config_sections(args.epochs, args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "train.log")
    torch.set_num_threads(args.threads)
    device = pick_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_cfg = Training(**{**train_cfg, "budget_min": args.budget_s / 60})
    log.info("device %s: %s", device, json.dumps(dataclasses.asdict(train_cfg)))
    started = time.monotonic()
    train_and_pick(args.data, out, model_cfg, train_cfg, args.threads)
    log.info("training took %.0f s", time.monotonic() - started)


if __name__ == "__main__":
    main()
