"""Training killed mid-run resumes from its last complete epoch and ends as if never killed."""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from runner import ROOT

from nucleoflow.dataset import build_dataset
from nucleoflow.errors import InputError
from nucleoflow.model import load_model
from nucleoflow.train import initial_model

# Real trainings in subprocesses (about 2 minutes on 2 cores), part of the default run.

MODEL = {"depth": 2, "base_width": 8, "norm": "batch"}
TRAIN = {
    "epochs": 4,
    "samples_per_epoch": 24,
    "batch_size": 4,
    "crop_size": 96,
    "learning_rate": 0.003,
    "weight_decay": 0.0001,
    "modality_balance": 0.5,
    "seed": 0,
}


@pytest.fixture(scope="module")
def data_dir(crops_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "data"
    build_dataset(crops_zip, out, max_images=10, seed=1, val_fraction=0.2, test_fraction=0.2)
    return out


def start(data_dir, out, train_cfg=TRAIN):
    """The train and best_epoch rules' code: epochs into out/epochs, then the best is out/model.pt."""
    code = (
        "from nucleoflow.logs import setup_logging\nfrom nucleoflow.train import train\n"
        "from nucleoflow.best_epoch import pick_best\n"
        f"setup_logging({str(out / 'train.log')!r})\n"
        f"train({str(data_dir)!r}, {str(out / 'epochs')!r}, {str(out / 'training')!r}, {MODEL!r}, {train_cfg!r}, threads=1)\n"
        f"pick_best({str(out / 'epochs')!r}, {str(data_dir)!r}, {str(out / 'model.pt')!r}, {str(out / 'history.csv')!r})\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after(proc, log, text, signum):
    """Send signum once `text` is in the log; the exit status."""
    deadline = time.monotonic() + 120
    while text not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before the kill"
        time.sleep(0.05)
    proc.send_signal(signum)
    return proc.wait(timeout=60)


def kill_after_epoch(proc, log, epoch, signum):
    return kill_after(proc, log, f"epoch {epoch}/", signum)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert start(data_dir, out).wait() == 0
    return out


@pytest.fixture(scope="module")
def uninterrupted(trained):
    return pd.read_csv(trained / "history.csv")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_training_resumes_and_matches(data_dir, uninterrupted, tmp_path, signum):
    returncode = kill_after_epoch(start(data_dir, tmp_path), tmp_path / "train.log", 2, signum)
    assert returncode != 0
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "epochs").exists()
    assert (tmp_path / "training" / "state.pt").exists()
    if signum == signal.SIGTERM:
        assert "SIGTERM: stopping" in (tmp_path / "train.log").read_text()
    assert start(data_dir, tmp_path).wait() == 0
    log = (tmp_path / "train.log").read_text()
    resumed = int(log.split("resumed from epoch ")[1].split()[0])
    assert resumed >= 2
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), uninterrupted.drop(columns="seconds"), atol=1e-6)
    assert (tmp_path / "model.pt").exists() and not (tmp_path / "training").exists()
    assert sorted(p.name for p in (tmp_path / "epochs").glob("*.pt")) == [f"epoch_00{i}.pt" for i in (1, 2, 3, 4)]


def test_fine_tuning_starts_from_the_given_model(data_dir, trained, uninterrupted, tmp_path):
    """train.init_model: the first epoch goes on from the trained model's weights, far ahead of
    a first epoch from scratch; the card says what it started from."""
    init = str(trained / "model.pt")
    assert start(data_dir, tmp_path, dict(TRAIN, epochs=1, learning_rate=1e-4, init_model=init)).wait() == 0
    first = pd.read_csv(tmp_path / "history.csv").iloc[0]
    saved = json.loads((trained / "model.json").read_text())["epoch"]  # the epoch init_model holds
    scratch, best = uninterrupted.iloc[0], uninterrupted[uninterrupted["epoch"] == saved].iloc[0]
    print(f"val_loss: from scratch {scratch.val_loss:.4f}, trained {best.val_loss:.4f}, fine-tuned {first.val_loss:.4f}")
    assert first.val_loss < scratch.val_loss
    assert abs(first.val_loss - best.val_loss) < abs(scratch.val_loss - best.val_loss) / 2
    assert json.loads((tmp_path / "model.json").read_text())["train"]["init_model"] == init


def test_a_fine_tuned_models_card_carries_the_rounds_before_it(data_dir, trained, tmp_path):
    """Each card's lineage: the rounds of its init_model's card, then its own (recipe, device,
    crops of all its epochs), kept when the file a round started from is gone."""
    first = tmp_path / "first.pt"
    shutil.copy(trained / "model.pt", first)
    first_sha = hashlib.sha256(first.read_bytes()).hexdigest()
    (tmp_path / "second").mkdir(), (tmp_path / "third").mkdir()
    assert start(data_dir, tmp_path / "second", dict(TRAIN, epochs=2, learning_rate=1e-4, init_model=str(first))).wait() == 0
    first.unlink()
    second = tmp_path / "second" / "model.pt"
    assert start(data_dir, tmp_path / "third", dict(TRAIN, epochs=1, learning_rate=5e-5, init_model=str(second))).wait() == 0
    rounds = json.loads((tmp_path / "third" / "model.json").read_text())["lineage"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert [r["init_model"] for r in rounds] == [None, str(first), str(second)]
    assert [r["init_sha256"] for r in rounds[1:]] == [first_sha, hashlib.sha256(second.read_bytes()).hexdigest()]
    assert [r["crops"] for r in rounds] == [TRAIN["samples_per_epoch"] * n for n in (4, 2, 1)]  # every epoch run
    assert [r["recipe"]["learning_rate"] for r in rounds] == [TRAIN["learning_rate"], 1e-4, 5e-5]
    assert all(r["device"].startswith("cpu: ") and r["processes"] == 1 and r["training_time_s"] >= 0 for r in rounds)
    assert rounds[0]["data"]["images"] == {"train": 8, "val": 1, "test": 1}  # the 10 images data_dir holds


def test_fine_tuning_refuses_a_model_of_another_shape(trained):
    with pytest.raises(InputError, match=r"model\.pt.*'base_width': 8.*Set model\.depth, base_width and norm"):
        initial_model(dict(MODEL, base_width=16), trained / "model.pt", torch.device("cpu"))


def test_changed_config_discards_checkpoint(data_dir, tmp_path):
    assert kill_after_epoch(start(data_dir, tmp_path), tmp_path / "train.log", 1, signal.SIGKILL) != 0
    changed = dict(TRAIN, epochs=2, learning_rate=0.002)
    assert start(data_dir, tmp_path, changed).wait() == 0
    log = (tmp_path / "train.log").read_text()
    assert "discarding checkpoint" in log and "resumed" not in log
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1, 2]


def test_distributed_training_matches_single_process(data_dir, uninterrupted, tmp_path):
    """Two CPU processes (DistributedDataParallel over gloo, launched as torchrun does)."""
    code = (
        "from nucleoflow.logs import setup_logging\nfrom nucleoflow.train import train\n"
        "from nucleoflow.best_epoch import pick_best\n"
        # Appending, as the ranks do: this process logs after them (pick_best).
        f"setup_logging({str(tmp_path / 'train.log')!r}, mode='a')\n"
        "if __name__ == '__main__':\n"
        f"    train({str(data_dir)!r}, {str(tmp_path / 'epochs')!r}, {str(tmp_path / 'training')!r}, {MODEL!r}, {TRAIN!r}, threads=2, processes=2, "
        f"log_path={str(tmp_path / 'train.log')!r})\n"
        f"    pick_best({str(tmp_path / 'epochs')!r}, {str(data_dir)!r}, {str(tmp_path / 'model.pt')!r}, {str(tmp_path / 'history.csv')!r})\n"
    )
    script = tmp_path / "ddp.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert "x 2;" in log and "epoch 4/4" in log
    history = pd.read_csv(tmp_path / "history.csv")
    single, ddp = uninterrupted.iloc[-1], history.iloc[-1]
    print(f"final val_loss single {single.val_loss:.4f} ddp {ddp.val_loss:.4f}; val_dsb {single.val_dsb:.4f} {ddp.val_dsb:.4f}")
    assert ddp.train_loss < history["train_loss"].iloc[0]
    assert abs(ddp.val_loss - single.val_loss) < 0.25 * single.val_loss
    assert (tmp_path / "model.pt").exists()


def train_shipped_args(data_dir, out, budget_s):
    """models/train_shipped.py's command line for the test model, 3 epochs fitted to budget_s."""
    sets = [f"--set=model.{k}={v}" for k, v in MODEL.items()] + [f"--set=train.{k}={v}" for k, v in TRAIN.items() if k not in ("epochs", "samples_per_epoch")]
    script = ROOT / "models" / "train_shipped.py"
    return [sys.executable, str(script), "--data", str(data_dir), "--out", str(out), "--budget-s", str(budget_s), "--epochs", "3", "--threads", "1", *sets]


def test_budgeted_training_stopped_by_sigterm_keeps_its_best_epoch(data_dir, tmp_path):
    """models/train_shipped.py (how the shipped model was trained): schedule sized to a budget;
    SIGTERM (a `timeout`, a lease running out) still leaves a finished model."""
    proc = subprocess.Popen(train_shipped_args(data_dir, tmp_path, 60), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert kill_after_epoch(proc, tmp_path / "train.log", 1, signal.SIGTERM) == 0
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["stopped_after_epoch"] >= 1 and card["epoch"] <= card["stopped_after_epoch"]
    assert card["train"]["epochs"] == 3 and card["train"]["samples_per_epoch"] % TRAIN["batch_size"] == 0
    assert card["train"]["samples_per_epoch"] > TRAIN["batch_size"]  # the budget bought more than one step
    assert card["training_time_s"] >= 0 and "per step" in (tmp_path / "train.log").read_text()
    load_model(tmp_path / "model.pt")


def test_budgeted_training_stopped_before_its_first_epoch_says_so(data_dir, tmp_path):
    """SIGTERM before any epoch was saved leaves no model and says to run again (not a traceback
    about a missing history)."""
    proc = subprocess.Popen(train_shipped_args(data_dir, tmp_path, 600), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert kill_after(proc, tmp_path / "train.log", "per step", signal.SIGTERM) == 128 + signal.SIGTERM
    assert "Traceback" not in proc.stderr.read()
    assert "stopped before the first epoch ended" in (tmp_path / "train.log").read_text()
    assert not (tmp_path / "model.pt").exists()


def test_equal_scores_keep_the_epoch_with_the_lower_validation_loss(trained, uninterrupted):
    """best_epoch keeps the epoch of the highest validation DSB, its weights as they were saved; a
    short run may score the same DSB (0) every epoch: the saved model is then the epoch with the
    lowest validation loss, not the first one."""
    card = json.loads((trained / "model.json").read_text())
    top = uninterrupted[uninterrupted["val_dsb"] == uninterrupted["val_dsb"].max()]
    assert card["epoch"] == top.loc[top["val_loss"].idxmin(), "epoch"]
    kept, _ = load_model(trained / "model.pt")
    epoch, _ = load_model(trained / "epochs" / f"epoch_{card['epoch']:03d}.pt")
    assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), epoch.state_dict().values()))


def test_a_budgeted_run_fits_its_schedule_and_a_killed_one_resumes_with_it(data_dir, tmp_path):
    """train.budget_min: samples_per_epoch is fitted from timed first steps so the epochs end
    within the budget; the fitted schedule is in the checkpoint, so a run killed after epoch 1
    resumes with it (not with a new fit) and ends with the model card recording it."""
    budget = {**TRAIN, "epochs": 3, "samples_per_epoch": 4, "budget_min": 0.4}
    returncode = kill_after_epoch(start(data_dir, tmp_path, budget), tmp_path / "train.log", 1, signal.SIGKILL)
    assert returncode != 0
    fitted = torch.load(tmp_path / "training" / "state.pt", weights_only=True)["samples_per_epoch"]
    assert fitted > budget["samples_per_epoch"] and fitted % budget["batch_size"] == 0
    log = (tmp_path / "train.log").read_text()
    assert f"-> 3 epochs x {fitted} crops" in log
    assert start(data_dir, tmp_path, budget).wait() == 0
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["train"]["samples_per_epoch"] == fitted and card["train"]["budget_min"] == 0.4
    assert len(pd.read_csv(tmp_path / "history.csv")) == 3
    resumed = (tmp_path / "train.log").read_text()  # the rerun's own log
    assert "resumed from epoch 1" in resumed and "budget 0.4 min" not in resumed  # fitted once, kept on resume
