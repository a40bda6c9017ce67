"""H&E tissue quality: shipped models scored on MoNuSeg's test images, through Segmenter.

    python benchmarks/monuseg.py [--archive ../shared/data/monuseg/monuseg_test.zip]
        [--models dsb2018_unet he_unet] [--no-tta] [--per-image FILE]

monuseg_test.zip (14 H&E images of 1000 px at 40x, CC BY-NC-SA) is never used for a choice:
he_unet's epoch and thresholds were chosen on 2 held-out MoNuSeg *training* images. Each model
runs as users run it (`segment`'s defaults: tiling, TTA up to 2 MP, its card's thresholds for
the modality read from the pixels, size-aware zoom). Prints per model: DSB (mean over images of
the mean AP over IoU 0.50-0.95), AP@0.5 pooled over images and the found/true nucleus ratio,
beside the issue's target and the estimate of HoVer-Net's level.
"""

import argparse
import time
from pathlib import Path

import pandas as pd

from nucleoflow.metrics import image_scores
from nucleoflow.robustness import archive_examples
from nucleoflow.segment import Segmenter

ROOT = Path(__file__).resolve().parents[1]
TARGET = "target: DSB >= 0.35, AP@0.5 >= 0.65 (HoVer-Net estimated at about 0.32 / 0.63 from its published PQ 0.597, DQ 0.770, SQ 0.773)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=ROOT.parent / "shared" / "data" / "monuseg" / "monuseg_test.zip")
    parser.add_argument("--models", nargs="+", default=["dsb2018_unet", "he_unet"], help="shipped model names or model.pt paths")
    parser.add_argument("--no-tta", action="store_true", help="without test-time augmentation (8x faster)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-image", type=Path, help="also write each image's scores to this CSV")
    args = parser.parse_args()
    examples = archive_examples(args.archive)
    rows, summary = [], []
    for model in args.models:
        start = time.perf_counter()
        with Segmenter(model, threads=args.threads, tta=not args.no_tta) as segmenter:
            scores = [{"model": model, "id": name, **image_scores(truth, segmenter(image, name))} for name, _, image, truth in examples]
        frame = pd.DataFrame(scores)
        pooled = frame[["tp_0.50", "fp_0.50", "fn_0.50"]].sum()
        summary.append(
            {
                "model": model,
                "images": len(frame),
                "DSB": frame["dsb"].mean(),
                "AP@0.5 pooled": pooled["tp_0.50"] / max(1, pooled.sum()),
                "AP@0.5 per image": frame["ap_0.50"].mean(),
                "found / true": frame["n_pred"].sum() / max(1, frame["n_true"].sum()),
                "seconds": time.perf_counter() - start,
            }
        )
        rows += scores
    print(f"{args.archive.name}: {len(examples)} images, {'no TTA' if args.no_tta else 'TTA up to 2 MP (the default)'}")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(TARGET)
    if args.per_image:
        pd.DataFrame(rows).to_csv(args.per_image, index=False)


if __name__ == "__main__":
    main()
