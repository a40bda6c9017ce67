"""Train the robustness candidates side by side and pick one by a rule fixed before the run.

    python models/train_candidates.py --data results/data --out DIR --budget-s 600
        [--candidates inner touching robust robust_finetune augment_finetune lowres_finetune] [--monuseg monuseg_test.zip]
    python models/train_candidates.py --data results/data --out DIR --judge-only --candidates NAME...
    python models/train_candidates.py --data results/data --out DIR --judge-only --candidates --judge NAME=MODEL.pt

The prepared GPU run of issue 12: each candidate trains for an equal share of the budget with
the train rule's code (the default schedule fitted to its share on this device, as
models/train_shipped.py does); on CUDA the batch is raised to --batch-size (the learning rate
scaled by its square root) and the images stay on the device. Then every candidate, and the
shipped model, is judged the same way on the **validation** split only: thresholds tuned there
without TTA (tune.tune_by_modality) and saved with the training nucleus sizes, as the package
rule ships a model (so Segmenter zooms images as users get it), then scored on the unchanged images and on
nucleoflow.robustness's rescaled and stain-jittered variants (and MoNuSeg's H&E test images,
reported, not judged: no candidate trains on H&E).

Decision rule (written down before any candidate was trained):
  A candidate replaces the shipped model only if, against the shipped model,
    1. validation DSB (all images) is higher by at least 0.01,
    2. histology validation DSB and fluorescence validation AP@0.5 (pooled) are not lower by more
       than 0.005, and
    3. its worst variant (rescaled x0.5/0.75/1.5/2, stain-jittered) lies at least 0.02 DSB
       closer to its unchanged images.
  Among the candidates that pass, the one with the highest validation DSB wins; if none passes,
  the shipped model stays. The test split is scored once, afterwards, for the winner only
  (benchmarks/quality.py), never for choosing.

Writes DIR/<candidate>/{model.pt, history.csv, train.log, tuned.pt, robustness.csv}, DIR/candidates.csv and
DIR/decision.json.
"""

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch
from train_shipped import config_sections, parse_sets, train_and_pick

from nucleoflow.device import pick_device
from nucleoflow.engine import load_engine
from nucleoflow.infer import probabilities
from nucleoflow.logs import setup_logging
from nucleoflow.metrics import image_scores
from nucleoflow.options import ThresholdSet, Tiling
from nucleoflow.package import tuned_model
from nucleoflow.robustness import archive_examples, robustness_table, split_examples, worst_variant
from nucleoflow.scale import training_sizes
from nucleoflow.schedule import Training
from nucleoflow.segment import Segmenter
from nucleoflow.shipped import model_path
from nucleoflow.tune import tune_by_modality

log = logging.getLogger("train_candidates")

ROBUST_AUGMENT = {"zoom": [0.5, 2.0], "aspect": 0.2, "stain": 0.2, "hue": 0.05, "saturation": 0.3, "grayscale": 0.1, "invert": 0.05}
LOWRES_AUGMENT = {**ROBUST_AUGMENT, "lowres": 0.3}
CANDIDATES = {
    "inner": {},  # the shipped recipe, retrained at this budget: the control
    "touching": {"targets": "touching", "border_weight": 3.0},
    "robust": {"targets": "touching", "border_weight": 3.0, "augment": ROBUST_AUGMENT},
    # The robust recipe from the shipped weights (fine-tuning keeps what they learned).
    "robust_finetune": {"targets": "touching", "border_weight": 3.0, "augment": ROBUST_AUGMENT, "init_model": "dsb2018_unet", "learning_rate": 0.0005},
    # Round 3: only the augmentation changes; the shipped targets (inner_boundary) stay, so the
    # fine-tuning does not spend its budget relearning what the output channels mean.
    "augment_finetune": {"augment": ROBUST_AUGMENT, "init_model": "dsb2018_unet", "learning_rate": 0.0005},
    # Round 6: the robust recipe plus low-resolution crops, for the halved images that lose their
    # detail (round 5: the x0.5 loss is the labelling's) and the small-nucleus ones Segmenter zooms up.
    "lowres_finetune": {"targets": "touching", "border_weight": 3.0, "augment": LOWRES_AUGMENT, "init_model": "dsb2018_unet", "learning_rate": 0.0005},
}
RULE = {"min_dsb_gain": 0.01, "max_modality_loss": 0.005, "min_worst_gain": 0.02}


def tuned(model_pt, examples, out_pt, sizes, threads):
    """The model saved again as the package rule ships it (package.tuned_model): postprocess
    thresholds tuned on `examples` (no TTA) and the training nucleus sizes, without which
    Segmenter zooms no image (so the rescaled variants would judge a path no user runs)."""
    engine = load_engine(model_pt, "auto", threads)
    tiling = Tiling(tta=False)
    pairs = [(probabilities(engine, image, tiling, name), labels) for name, _, image, labels in examples]
    params, _ = tune_by_modality(pairs, [modality for _, modality, _, _ in examples])
    tuned_model(model_pt, ThresholdSet.from_json(params, tuned_on="val"), out_pt, sizes)
    return params


def judge(name, model_pt, examples, monuseg, threads):
    """Validation scores of one model: all images, per modality, robustness variants."""
    segmenter = Segmenter(model_pt, tta=False, threads=threads)
    per_image = pd.DataFrame([{"modality": m, **image_scores(truth, segmenter(image))} for _, m, image, truth in examples])
    row = {"model": name, "val DSB": per_image["dsb"].mean()}
    for modality, frame in per_image.groupby("modality"):
        pooled = frame[["tp_0.50", "fp_0.50", "fn_0.50"]].sum()
        row[f"{modality} DSB"] = frame["dsb"].mean()
        row[f"{modality} AP@0.5 pooled"] = pooled["tp_0.50"] / max(1, pooled.sum())
    table = robustness_table(segmenter, examples, extra={"MoNuSeg": monuseg} if monuseg else None)
    table.to_csv(Path(model_pt).parent / "robustness.csv", index=False)
    worst = worst_variant(table)
    row.update({"worst variant": worst["variant"], "worst - unchanged": worst["DSB - unchanged"]})
    if monuseg:
        row["MoNuSeg DSB"] = table.set_index("variant").loc["MoNuSeg", "DSB"]
    log.info("%s: %s", name, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
    return row


def passes(candidate, shipped):
    """The decision rule's three conditions (module docstring)."""
    checks = {"val DSB": candidate["val DSB"] >= shipped["val DSB"] + RULE["min_dsb_gain"]}
    for key in ("histology DSB", "fluorescence AP@0.5 pooled"):
        if key in shipped and key in candidate:
            checks[key] = candidate[key] >= shipped[key] - RULE["max_modality_loss"]
    checks["robustness"] = candidate["worst - unchanged"] >= shipped["worst - unchanged"] + RULE["min_worst_gain"]
    return checks


def decide(rows):
    shipped = rows[0]
    verdicts = {row["model"]: passes(row, shipped) for row in rows[1:]}
    winners = [row for row in rows[1:] if all(verdicts[row["model"]].values())]
    best = max(winners, key=lambda row: row["val DSB"])["model"] if winners else shipped["model"]
    return {"rule": RULE, "checks": verdicts, "winner": best}


def crops_seen(out, epochs):
    """(card, crops): a trained candidate's card and the crops it trained on, its (fitted)
    samples_per_epoch times its epochs."""
    card = json.loads((out / "model.json").read_text())
    return card, card["train"]["samples_per_epoch"] * epochs


def trained_already(name, args):
    """(model.pt, its crops and training time) of a candidate trained by an earlier run into --out."""
    out = Path(args.out) / name
    card, crops = crops_seen(out, len(pd.read_csv(out / "history.csv")))
    return out / "model.pt", {"crops": crops, "train_s": card.get("training_time_s")}


def train_candidate(name, overrides, args, model_cfg, base_cfg, device, share_s):
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    # The train rule's budget: the schedule is fitted to the share from timed first steps.
    # --set wins over the candidate's own recipe (e.g. train.init_model: continue a round's model).
    cfg = Training(**{**base_cfg, **overrides, **parse_sets(args.set)["train"], "budget_min": share_s / 60})
    if device.type == "cuda":
        cfg = dataclasses.replace(cfg, learning_rate=cfg.learning_rate * (args.batch_size / cfg.batch_size) ** 0.5, batch_size=args.batch_size)
    log.info("%s on %s: %s", name, device, json.dumps(dataclasses.asdict(cfg)))
    started = time.monotonic()
    history = train_and_pick(args.data, out, model_cfg, cfg, args.threads)
    seconds = time.monotonic() - started
    _, crops = crops_seen(out, len(history))
    log.info("%s: trained %d crops in %.0f s", name, crops, seconds)
    return out / "model.pt", {"crops": crops, "train_s": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a results/data folder with the model card's split")
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget-s", type=float, help="wall-clock seconds of training, shared equally by the candidates (train.budget_min)")
    parser.add_argument("--judge-only", action="store_true", help="train nothing: judge the candidates an earlier run trained into --out")
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--judge", action="append", default=[], metavar="NAME=MODEL.pt", help="also judge a model made otherwise (e.g. mixed weights)")
    parser.add_argument("--batch-size", type=int, default=64, help="crops per step on CUDA (the config's on a CPU)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--monuseg", type=Path, help="monuseg_test.zip, reported beside the variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a train or model setting (a candidate's own too)")
    args = parser.parse_args()
    if not args.judge_only and not args.budget_s:
        parser.error("--budget-s is required (or --judge-only)")
    if not args.judge_only and not args.candidates:
        parser.error("name a candidate to train (or --judge-only)")

    model_cfg, base_cfg = config_sections(args.epochs, args.set)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    setup_logging(Path(args.out) / "candidates.log")
    device = pick_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.judge_only:
        trained = {name: trained_already(name, args) for name in args.candidates}
    else:
        share_s = args.budget_s / len(args.candidates)
        trained = {name: train_candidate(name, CANDIDATES[name], args, model_cfg, base_cfg, device, share_s) for name in args.candidates}
    trained |= {name: (Path(path), {}) for name, path in (item.split("=", 1) for item in args.judge)}

    examples = split_examples(args.data)
    sizes = training_sizes(args.data)
    monuseg = archive_examples(args.monuseg) if args.monuseg else None
    rows = []
    for name, source in [("shipped", model_path("dsb2018_unet"))] + [(n, pt) for n, (pt, _) in trained.items()]:
        tuned_pt = Path(args.out) / name / "tuned.pt"
        tuned_pt.parent.mkdir(parents=True, exist_ok=True)
        tuned(source, examples, tuned_pt, sizes, args.threads)
        rows.append({**judge(name, tuned_pt, examples, monuseg, args.threads), **(trained[name][1] if name in trained else {})})
    decision = decide(rows)
    pd.DataFrame(rows).to_csv(Path(args.out) / "candidates.csv", index=False)
    (Path(args.out) / "decision.json").write_text(json.dumps(decision, indent=2, default=bool) + "\n")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"decision: {decision['winner']} ({json.dumps(decision['checks'], default=bool)})")


if __name__ == "__main__":
    main()
