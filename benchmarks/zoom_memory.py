"""Peak memory of every segment path against the memory the segment rule asks for (issue 23, class 6).

    python benchmarks/zoom_memory.py [--side 4096] [--threads 2] [--model dsb2018_unet]

The image: a side x side 8-bit tiled zlib TIFF of nuclei 4-5 px across (tests/test_scale.py's
small_nuclei: four committed DSB2018 fluorescence crops shrunk 4x, repeated with flips), which
segment labels at about 4x zoom: a 16384 px zoomed image for the default side, held whole by the
former zoom path (over 6.2 GB). Each path runs in a fresh process as the segment rule's job does
(`threads` network threads and as many labelling workers, the default tiling):

    zoomed      Segmenter.to_files, the diameter estimated (first pass, probe, zoomed labelling)
    own scale   Segmenter.to_files with the diameter given as the training median: block-wise at 1x
    part k/2    Segmenter.to_part, each half of the block rows, each sizing the image itself
    join        shards.merge_parts of the two parts (the `segment` gather rule, 4000 MB)

Memory is the job's: the largest sum, over its process and its labelling workers, of each one's
proportional set size (Pss in /proc/PID/smaps_rollup: a page shared by n processes counts 1/n,
so shared libraries and shared-memory blocks count once), sampled every 0.25 s; Linux only. The
main process's own peak resident set (getrusage) is printed beside it. The limit is
nucleoflow.options.segment_mem_mb(memory_mb, threads), the segment rule's mem_mb (MB, which
SLURM reads as MiB); the table ends with each path's peak as a fraction of it.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
from test_scale import small_nuclei  # noqa: E402

from nucleoflow.options import Tiling, segment_mem_mb  # noqa: E402

CHILD = """
import json, resource, sys
from nucleoflow.segment import Segmenter
from nucleoflow.shards import merge_parts

if __name__ == "__main__":  # the labelling workers are spawned: they import this file
    task = json.loads(sys.argv[1])
    if task["kind"] == "join":
        row = merge_parts(task["parts"], task["out"], "image")
    else:
        with Segmenter(task["model"], threads=task["threads"], diameter=task["diameter"], workers=task["threads"]) as segmenter:
            if task["kind"] == "files":
                row = segmenter.to_files(task["image"], task["out"], ["labels", "measurements"])
            else:
                segmenter.to_part(task["image"], task["out"], ["labels", "measurements"], tuple(task["part"]))
                with open(task["out"] + "/part.json") as file:
                    record = json.load(file)
                row = {"nuclei": len(record["areas"]), "zoom": record["zoom"]}
    print("RESULT", json.dumps({"nuclei": row["nuclei"], "zoom": row.get("zoom"), "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_image(path, side):
    """side x side px of small_nuclei's 128 px mosaic, repeated with flips."""
    tile, _ = small_nuclei()
    reps = -(-side // tile.shape[0])
    rows = [np.concatenate([tile[:: 1 - 2 * (i % 2), :: 1 - 2 * (j % 2)] for j in range(reps)], axis=1) for i in range(reps)]
    tifffile.imwrite(path, np.concatenate(rows)[:side, :side], tile=(512, 512), compression="zlib")


def _descendants(root):
    """root and every process below it (from /proc/*/stat's parent ids)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


def _pss_mib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total / 1024


def run(script, task):
    """(seconds, peak Pss of the job's processes (MiB), the child's result) of one path."""
    process = subprocess.Popen([sys.executable, str(script), json.dumps(task)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _pss_mib(_descendants(process.pid)))
            done.wait(0.25)

    start = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode:
        raise RuntimeError(err[-3000:])
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[len("RESULT ") :])
    return seconds, peak[0], result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsb2018_unet")
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from nucleoflow.shipped import model_path

    model = str(model_path(args.model)) if "/" not in args.model else args.model
    limit = segment_mem_mb(Tiling().memory_mb, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image, script = tmp / "image.tif", tmp / "child.py"
        script.write_text(CHILD)
        make_image(image, args.side)
        print(f"{args.side}x{args.side} 8-bit tiled zlib TIFF, nuclei 4-5 px across; {args.threads} threads and labelling workers; default tiling")
        print(f"segment rule's mem_mb: {limit} (predict.memory_mb {Tiling().memory_mb} + 2000 + 400 x {args.threads} threads); the gather rule's: 4000")
        common = {"model": model, "threads": args.threads, "image": str(image)}
        tasks = [
            ("zoomed", {**common, "kind": "files", "diameter": 0, "out": str(tmp / "zoomed")}, limit),
            ("own scale", {**common, "kind": "files", "diameter": 18.4, "out": str(tmp / "own")}, limit),
            ("part 1/2", {**common, "kind": "part", "diameter": 0, "part": [1, 2], "out": str(tmp / "part1")}, limit),
            ("part 2/2", {**common, "kind": "part", "diameter": 0, "part": [2, 2], "out": str(tmp / "part2")}, limit),
            ("join", {"kind": "join", "parts": [str(tmp / "part1"), str(tmp / "part2")], "out": str(tmp / "joined")}, 4000),
        ]
        (tmp / "joined").mkdir()
        print(f"{'path':<10} {'zoom':>6} {'nuclei':>8} {'seconds':>8} {'peak Pss':>10} {'main RSS':>10} {'mem_mb':>7} {'of it':>6}")
        for name, task, mem_mb in tasks:
            seconds, peak, result = run(script, task)
            rss = result["max_rss_kib"] / 1024
            zoom = "" if result["zoom"] is None else f"{result['zoom']:g}"
            print(f"{name:<10} {zoom:>6} {result['nuclei']:8d} {seconds:8.1f} {peak:6.0f} MiB {rss:6.0f} MiB {mem_mb:7d} {peak / mem_mb:6.2f}")


if __name__ == "__main__":
    main()
