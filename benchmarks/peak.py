"""fp32 FMA peak of this machine in GFLOP/s, from the AVX2/FMA loop in fma_peak.c.

Run `python benchmarks/peak.py [SECONDS]`. A register-only FMA loop, unlike a matmul,
measures what the cores can issue, free of memory and library effects.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("fma_peak.c")
CFLAGS = ["-O2", "-mavx2", "-mfma"]
# Two 256-bit FMA pipes x 8 fp32 lanes x 2 FLOPs (multiply + add) per cycle.
FLOP_PER_CYCLE = 32
REPEATS = 3


def missing():
    """What the benchmark needs and this machine lacks (empty when it can run)."""
    needs = [] if shutil.which("gcc") else ["gcc on PATH"]
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return needs + ["/proc/cpuinfo (to check the avx2 and fma CPU flags)"]
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return needs + [f"the {flag} CPU flag" for flag in ("avx2", "fma") if flag not in flags]


def build():
    """Compile the kernel once per source and flags; later calls reuse the binary."""
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"fma_peak-{key}"
    if not binary.exists():
        # Build under a per-process name and rename, so concurrent callers never run a half-written file.
        part = binary.with_name(f"{binary.name}.{os.getpid()}")
        subprocess.run(["gcc", *CFLAGS, "-o", str(part), str(SOURCE)], check=True)
        os.replace(part, binary)
    return binary


def run_all(binary, iterations, cpus):
    """Start one kernel per CPU at once, each pinned to its CPU; return each one's (FLOPs, seconds)."""
    procs = []
    for cpu in cpus:
        procs.append(subprocess.Popen([str(binary), str(iterations)], stdout=subprocess.PIPE, text=True))
        # Pinned after the start (preexec_fn is unsafe with threads); the kernel's timer starts later still.
        os.sched_setaffinity(procs[-1].pid, {cpu})
    outs = [proc.communicate()[0] for proc in procs]
    if failed := [proc.returncode for proc in procs if proc.returncode]:
        raise RuntimeError(f"{binary} exited with status {failed}")
    return [tuple(float(field) for field in out.split()[:2]) for out in outs]


def fma_peak(seconds=1.0):
    """Best of a few all-core runs of about `seconds` each; gflops sums the cores."""
    if lacking := missing():
        raise RuntimeError("FMA peak benchmark needs " + ", ".join(lacking))
    binary = build()
    cpus = sorted(os.sched_getaffinity(0))
    # Size the runs from a short single-core probe.
    probe = 10_000_000
    ((_, probe_seconds),) = run_all(binary, probe, cpus[:1])
    iterations = max(probe, int(probe * seconds / probe_seconds))
    runs = [[flops / secs / 1e9 for flops, secs in run_all(binary, iterations, cpus)] for _ in range(REPEATS)]
    per_core = max(runs, key=sum)
    gflops = sum(per_core)
    return {
        "cores": len(cpus),
        "gflops": gflops,
        "per_core": per_core,
        "flop_per_cycle": FLOP_PER_CYCLE,
        "implied_ghz": gflops / len(cpus) / FLOP_PER_CYCLE,
    }


if __name__ == "__main__":
    result = fma_peak(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(f"cores          {result['cores']}")
    print(f"gflops         {result['gflops']:.1f}")
    print(f"per_core       {', '.join(f'{rate:.1f}' for rate in result['per_core'])}")
    print(f"flop_per_cycle {result['flop_per_cycle']}")
    print(f"implied_ghz    {result['implied_ghz']:.2f}")
