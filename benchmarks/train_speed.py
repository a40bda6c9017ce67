"""How fast training runs on this machine, against inference in the same run.

    python benchmarks/train_speed.py --data results/data [--steps 12] [--threads 2]

Prints crops/s and GFLOP/s (the backward counted as twice the forward, so 3x the model's
forward GFLOP per megapixel) of, on the data folder's training images:
  - the bare step: forward, loss, backward and AdamW on one fixed batch, again and again;
  - the whole loop as nucleoflow.train runs it (each batch cut and augmented on the main
    thread, then its step), and with the next batch made in a background thread while the step
    runs (tried: slower on 2 cores, where the thread takes cycles from the step and a batch costs
    1/30 of it), each with the robustness augmentation of train_candidates;
and inference's GFLOP/s (the shipped model's engine on one 1024 px window) measured in the
same run, so the ratio is comparable across runs of a VM whose speed varies. --compile adds
the bare step under torch.compile (inductor); --layers prints where the step's time goes, by
operator, forward and backward (torch.profiler).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from throughput import gflop_per_mp

from nucleoflow.ahead import ahead
from nucleoflow.augment import Augmentation
from nucleoflow.crops import load_split, make_batch, sampling_weights
from nucleoflow.device import prepare, torch_threads
from nucleoflow.engine import load_engine
from nucleoflow.heads import get_head
from nucleoflow.loss import train_step
from nucleoflow.model import build_unet
from nucleoflow.shipped import model_path

LOSS = get_head("interior_border").loss  # the shipped models' head
SHIPPED = {"depth": 4, "base_width": 16, "norm": "batch"}
AUGMENT = {"zoom": [0.5, 2.0], "aspect": 0.2, "stain": 0.2, "hue": 0.05, "saturation": 0.3, "grayscale": 0.1, "invert": 0.05}


def inference_gflops(model, side, threads, repeats=3):
    engine = load_engine(model, "auto", threads)
    image = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    engine(image)
    start = time.perf_counter()
    for _ in range(repeats):
        engine(image)
    return repeats * side * side / 1e6 / (time.perf_counter() - start)


def step_rate(model, optimizer, batches, steps):
    """Crops per second over `steps` steps taken from the `batches` iterator (after one warm-up)."""
    step = iter(batches)
    train_step(model, optimizer, *next(step), torch.device("cpu"), LOSS)
    start, crops = time.perf_counter(), 0
    for _ in range(steps):
        images, targets = next(step)
        train_step(model, optimizer, images, targets, torch.device("cpu"), LOSS)
        crops += len(images)
    return crops / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a results/data folder (manifest.csv, images/, labels/)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also the bare step with torch.compile")
    parser.add_argument("--layers", action="store_true", help="also the bare step's time by operator")
    args = parser.parse_args()
    model_pt = model_path("dsb2018_unet")
    forward = gflop_per_mp(model_pt)
    train_gflop = 3 * forward * 256 * 256 / 1e6  # per crop: forward + backward (twice the forward)
    train_set = load_split(args.data, pd.read_csv(args.data / "manifest.csv"), "train")
    weights = sampling_weights(train_set, 0.5)
    aug = Augmentation.from_config(AUGMENT)
    with torch_threads(args.threads):
        mp_s = inference_gflops(model_pt, 1024, args.threads)
        infer = mp_s * forward
        print(f"inference: {mp_s:.2f} MP/s = {infer:.1f} GFLOP/s ({forward:.1f} GFLOP/MP, 1024 px window, {args.threads} threads)")
        rng = np.random.default_rng(0)

        def batch(_=None):
            return make_batch(train_set, rng.choice(len(train_set), size=args.batch_size, p=weights), 256, rng, torch.device("cpu"), aug)

        start = time.perf_counter()
        for _ in range(args.steps):
            batch()
        prep = args.batch_size * args.steps / (time.perf_counter() - start)
        print(f"{'batches alone (crops, zoom, augmentation)':<48} {prep:6.2f} crops/s")
        fixed = batch()
        rows = {
            "bare step (one fixed batch)": lambda: iter(lambda: fixed, None),
            "whole loop, batches inline (nucleoflow.train)": lambda: iter(batch, None),
            "whole loop, batches made ahead in a thread": lambda: ahead(batch, range(args.steps + 1)),
        }
        if args.compile:
            rows["bare step, torch.compile (inductor)"] = rows["bare step (one fixed batch)"]
        for label, batches in rows.items():
            torch.manual_seed(0)
            model = prepare(build_unet(SHIPPED), torch.device("cpu"))
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            if "compile" in label:
                model = torch.compile(model)
                step_rate(model, optimizer, batches(), 2)  # compiles forward and backward
            rate = step_rate(model, optimizer, batches(), args.steps)
            print(f"{label:<48} {rate:6.2f} crops/s = {rate * train_gflop:6.1f} GFLOP/s = {rate * train_gflop / infer:6.1%} of inference")
        if args.layers:
            operators(fixed, args.steps)


def operators(batch, steps):
    """The bare step's CPU time by operator (forward and backward ops listed apart)."""
    model = prepare(build_unet(SHIPPED), torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    train_step(model, optimizer, *batch, torch.device("cpu"), LOSS)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            train_step(model, optimizer, *batch, torch.device("cpu"), LOSS)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=16))


if __name__ == "__main__":
    main()
