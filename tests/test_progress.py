"""Long work says how long it will take: progress lines with the time left, and training's
estimate of the whole schedule on this device."""

import logging
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from runner import ROOT

from nucleoflow.dataset import build_dataset
from nucleoflow.infer import predict_manifest
from nucleoflow.options import Tiling
from nucleoflow.progress import progress
from nucleoflow.shipped import model_path
from nucleoflow.tune import tune_folder


@pytest.fixture(scope="module")
def data_dir(crops_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "data"
    build_dataset(crops_zip, out, max_images=10, seed=1, val_fraction=0.3, test_fraction=0.2)
    return out


def test_progress_lines_carry_rate_and_time_left(caplog):
    """Away from a terminal (workflow logs), a line at the start, then at most one per interval
    while work advances, each with elapsed<left time, then the end."""
    log = logging.getLogger("nucleoflow.test")
    with caplog.at_level(logging.INFO, "nucleoflow.test"):
        for _ in progress(range(12), desc="work", unit="item", log=log, interval=0.2):
            time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("work:   0%") and lines[-1].startswith("work: 100%") and "12/12" in lines[-1]
    assert 3 <= len(lines) <= 6  # 0.6 s of work, a line per 0.2 s: not one per item
    assert all(re.search(r"\[\d\d:\d\d<\d\d:\d\d", line) for line in lines[1:])  # elapsed<remaining


def test_predict_and_tune_log_progress(data_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, "nucleoflow"):
        predict_manifest(model_path("dsb2018_unet"), data_dir, tmp_path / "probs", ["val"], Tiling(tta=False), threads=2)
        tune_folder(tmp_path / "probs", data_dir, "val", tmp_path / "thresholds.json", tmp_path / "grid.csv")
    text = caplog.text
    assert re.search(r"predict: 100%.*\| 3/3 \[", text)
    assert re.search(r"tune seed_threshold, foreground_threshold \(3 images\): 100%.*42/42", text)


@pytest.mark.slow
def test_training_tells_how_long_the_default_schedule_takes_on_cpu(data_dir, tmp_path):
    """The default schedule (sized for a GPU) on 2 CPU threads: after its first steps, training
    says it will take hours and names config/cpu.yaml. Stopped by SIGTERM once it has said so."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    log = tmp_path / "train.log"
    code = (
        "from nucleoflow.logs import setup_logging\nfrom nucleoflow.train import train\n"
        f"setup_logging({str(log)!r})\n"
        f"train({str(data_dir)!r}, {str(tmp_path / 'epochs')!r}, {str(tmp_path / 'training')!r}, "
        f"{config['model']!r}, {config['train']!r}, threads=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while "sized for a GPU" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    text = log.read_text()
    assert re.search(r"training steps:\s+0%.*\| 0/\d+", text)  # the progress line, from the start
    hours = float(re.search(r"the whole schedule \(20 epochs x 441 steps of 16 crops\) takes about ([\d.]+) h", text).group(1))
    assert hours >= 3
    assert re.search(r"sized for a GPU: on this CPU it takes about [\d.]+ h\. config/cpu\.yaml", text)
    print(f"default schedule on 2 CPU threads: about {hours} h")
