"""Time to plan `segment` over 10,000 images (snakemake -n), spread over cluster jobs.

    python benchmarks/dag.py [--images 10000] [--jobs 1 64]

The DAG holds one job per shard (--set-scatter segment=N), never one per image, so planning
time does not grow with the number of images; each job loads the model once.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        tiny = Image.fromarray(np.zeros((16, 16), np.uint8))
        for i in range(args.images):
            tiny.save(folder / f"img_{i:05d}.png")
        overlay = Path(tmp) / "segment.yaml"
        overlay.write_text(f"segment:\n  input_dir: {folder}\n")
        for jobs in args.jobs:
            command = [
                sys.executable,
                "-m",
                "snakemake",
                "-n",
                "segment",
                "--set-scatter",
                f"segment={jobs}",
                "--configfile",
                str(ROOT / "config" / "config.yaml"),
                str(overlay),
            ]
            start = time.perf_counter()
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if result.returncode:
                raise SystemExit(result.stdout[-3000:] + result.stderr[-3000:])
            planned = result.stdout.split("Job stats:")[1].split("total")[1].split()[0]
            print(f"{args.images} images, --set-scatter segment={jobs}: {planned} jobs planned in {seconds:.1f} s (snakemake -n, including its start-up)")


if __name__ == "__main__":
    main()
