"""The prepared GPU benchmark (benchmarks/throughput.py --device cuda: device_section), run here
on the CPU on a small image, so a session lent a GPU spends its few minutes measuring, not
debugging the script."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import torch
from throughput import device_section
if __name__ == "__main__":  # the postprocess workers are spawned: they import this script
    device_section("dsb2018_unet", 640, torch.device("cpu"), threads=2, workers=2)
"""


def test_device_section_runs_and_reports_every_row(tmp_path):
    script = tmp_path / "device_smoke.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    rows = [line for line in lines if "MP/s" in line]
    assert len(rows) == 6, result.stdout  # naive, 4 predict settings, end-to-end segment
    for line in rows[1:5]:
        difference = float(line.rsplit("max |p - naive| ", 1)[1])
        assert difference < 1e-3, line  # every path computes the naive pass's probabilities
    assert "segment end to end, 2 postprocess workers" in rows[5] and " nuclei;" in rows[5]
    assert int(rows[5].split(" s, ")[1].split(" nuclei")[0]) > 50  # a 640 px mosaic of real images: 82 nuclei from the committed crops, 142 from the archive
