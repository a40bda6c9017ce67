"""The smoke workflow, and one image split over segment jobs, through profiles/slurm on a real
single-node SLURM started for the test.

The module fixture writes slurm.conf, gres.conf and cgroup.conf into a temporary folder,
starts munged, slurmctld and slurmd there (no systemd; SLURM_CONF points at the folder),
and stops them by PID afterwards. The node has two partitions, `cpu` and `gpu` (the names
the profile uses), and one fake GPU (gres.conf File=/dev/null): SLURM schedules it and sets
CUDA_VISIBLE_DEVICES=0, torch finds no device and the jobs run on the CPU.

Needs root (slurmd) and the Debian packages slurmctld, slurmd, slurm-client and munge;
skipped, saying why, without them.
"""

import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from runner import ROOT, copy_workflow
from test_shards import write_mosaic, write_streaming_model

from nucleoflow.options import Tiling
from nucleoflow.segment import Segmenter

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
# Every rule of the smoke run except `all`; each must be a SLURM job of its own.
RULES = ("download", "preprocess", "train", "best_epoch", "predict", "tune", "tuned_model", "label", "evaluate", "report", "package", "robustness")
GPU_RULES = ("train", "predict", "label")
# Memory the smoke rules ask for (predict: 8000 MB) must fit on the node.
MIN_NODE_MEM_MB = 16000
MIN_NODE_CPUS = 2
SNAKEMAKE_TIMEOUT_S = 600


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_definition(slurmd):
    """The node as `slurmd -C` sees it, raised to what the smoke rules ask for."""
    out = subprocess.run([slurmd, "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\d+)", out.splitlines()[0]))
    cpus, mem = int(fields["CPUs"]), int(fields["RealMemory"])
    layout = ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    topology = " ".join(f"{k}={fields[k]}" for k in layout if k in fields)
    if cpus < MIN_NODE_CPUS:
        cpus, topology = MIN_NODE_CPUS, ""
    return f"CPUs={cpus} {topology} RealMemory={max(mem, MIN_NODE_MEM_MB)}"


class SlurmCluster:
    """munged + slurmctld + slurmd on this machine, all state under `root`."""

    def __init__(self, root, programs):
        self.root = root
        self.bin = programs
        self.procs = {}
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        # Clients (sbatch, squeue, srun inside jobs) find the cluster through SLURM_CONF;
        # SLURM_* variables of an enclosing allocation would confuse them.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        self.env["SLURM_CONF"] = str(self.conf)
        # Inside a job the plugin's job step (snakemake-executor-plugin-slurm-jobstep) calls
        # srun with every SLURM_* variable removed, SLURM_CONF too: on a cluster srun then
        # reads /etc/slurm/slurm.conf; here a shim first on PATH points it at this cluster.
        self.env["PATH"] = os.pathsep.join([str(root / "bin"), SBIN])

    def logs(self):
        return "\n".join(
            f"--- {path.name} (tail)\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.root / "log").glob("*"))
        )

    def write_config(self):
        for sub in ("munge", "log", "state", f"spool/{self.host}", "run"):
            (self.root / sub).mkdir(mode=0o700, parents=True)
        r = self.root
        self.conf.write_text(
            f"""\
ClusterName=nucleoflowtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={r}/plugstack.conf
MailProg=/bin/true
# No cgroups in containers: track processes by parentage, no CPU/memory binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: no accounting (AccountingStorageTRES=gres/gpu would kill slurmctld), so
# sacct has nothing; finished jobs stay visible to squeue/scontrol for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that gives no memory would take the whole node.
DefMemPerCPU=1000
ReturnToService=2
InactiveLimit=0
KillWait=10
SchedulerType=sched/backfill
GresTypes=gpu
# The node as slurmd -C sees it, raised to what the smoke rules ask for; config_overrides
# makes slurmd use these numbers instead of draining a smaller test machine.
SlurmdParameters=config_overrides
NodeName={self.host} NodeAddr=127.0.0.1 {node_definition(self.bin["slurmd"])} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={self.host} MaxTime=INFINITE State=UP
"""
        )
        # A fake GPU: scheduled like a real one; jobs get CUDA_VISIBLE_DEVICES=0 and no device.
        (r / "gres.conf").write_text("AutoDetect=off\nName=gpu File=/dev/null\n")
        (r / "cgroup.conf").write_text("CgroupAutomount=no\nConstrainCores=no\nConstrainRAMSpace=no\nConstrainDevices=no\n")
        (r / "plugstack.conf").write_text("")
        (r / "bin").mkdir()
        shim = r / "bin" / "srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {self.bin["srun"]} "$@"\n')
        shim.chmod(0o755)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)

    def spawn(self, name, *args):
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(
            [self.bin[name], *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def check_alive(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                out = (self.root / "log" / f"{name}.out").read_text(errors="replace")
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{out[-2000:]}\n{self.logs()}")

    def wait_for(self, what, ready, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"SLURM test cluster: {what} not ready after {timeout} s\n{self.logs()}")

    def run(self, *args, check=True):
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def start(self):
        self.write_config()
        m = self.root / "munge"
        self.spawn(
            "munged",
            "--foreground",
            "--force",
            f"--socket={self.munge_socket}",
            f"--key-file={m / 'munge.key'}",
            f"--pid-file={m / 'munged.pid'}",
            f"--seed-file={m / 'munged.seed'}",
            f"--log-file={self.root / 'log' / 'munged.log'}",
        )
        self.wait_for("munged", self.munge_socket.exists)
        # -D: stay in the foreground, so the PID we hold is the daemon; -i: no old state.
        self.spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
        self.wait_for("slurmctld", lambda: self.run(self.bin["scontrol"], "ping", check=False).returncode == 0)
        self.spawn("slurmd", "-D", "-f", str(self.conf), "-N", self.host)
        self.wait_for("node", lambda: self.node_state() == "idle")

    def node_state(self):
        out = self.run(self.bin["sinfo"], "-h", "-N", "-o", "%t", check=False).stdout.split()
        return out[0] if out else ""

    def jobs(self):
        """Every job slurmctld remembers (finished ones for MinJobAge), as dicts of scontrol fields."""
        out = self.run(self.bin["scontrol"], "-o", "show", "job").stdout
        return [dict(re.findall(r"([^\s=]+)=(\S*)", line)) for line in out.splitlines() if line.startswith("JobId=")]

    def stop(self):
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            # jobs a failed or interrupted run left behind go first, so slurmd leaves no job steps
            self.run(self.bin["scancel"], "--full", "--user", str(os.getuid()), check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                active = self.run(self.bin["squeue"], "-h", "-t", "PD,R,CG,S", "-o", "%i", check=False)
                if active.returncode != 0 or not active.stdout.strip():
                    break
                time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    programs = {name: shutil.which(name, path=SBIN) for name in PROGRAMS}
    missing = [name for name, path in programs.items() if path is None]
    if missing:
        pytest.skip(
            f"SLURM not installed (missing {', '.join(missing)}): "
            "apt-get install slurmctld slurmd slurm-client munge to run the SLURM tests"
        )
    if os.geteuid() != 0:
        pytest.skip("the SLURM tests start slurmd, which must run as root")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), programs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def run_on_slurm(slurm, work, *args):
    """snakemake *args in work (a copy of the workflow) through --profile profiles/slurm; returns
    its output and the records of the jobs it ran."""
    shutil.copytree(ROOT / "profiles", work / "profiles")  # profiles/default is read too, as in the repo
    before = {job["JobId"] for job in slurm.jobs()}
    # What this cluster needs beyond profiles/slurm, given as a second profile so every other
    # key of the user-facing one is exercised: no account (there is no accounting database),
    # job states from squeue (no sacct without slurmdbd; MinJobAge keeps finished jobs),
    # quick first status check, SLURM logs kept for inspection, no retries (fail fast).
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    resources = {k: v for k, v in profile["default-resources"].items() if k != "slurm_account"}
    overlay = work / "test-cluster"
    overlay.mkdir()
    (overlay / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "default-resources": resources,
                "slurm-status-command": "squeue",
                "slurm-init-seconds-before-status-checks": 2,
                "slurm-keep-successful-logs": True,
                "retries": 0,
            }
        )
    )
    cmd = [
        "timeout", "-s", "INT", "-k", "30", str(SNAKEMAKE_TIMEOUT_S),
        sys.executable, "-m", "snakemake",
        "--profile", "profiles/slurm", "--profile", str(overlay),
        *args,
    ]  # fmt: skip
    # SIGINT, not SIGTERM: on SIGTERM snakemake keeps waiting for its cluster jobs.
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=work, env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.monotonic() - start
    jobs = [job for job in slurm.jobs() if job["JobId"] not in before]
    if result.returncode != 0:
        slurm_logs = "\n".join(
            f"--- {p.relative_to(work)}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))
        )
        pytest.fail(
            f"snakemake --profile profiles/slurm failed ({result.returncode}) after {elapsed:.0f} s:\n"
            f"{result.stdout[-6000:]}\n{slurm_logs}\n--- jobs\n{jobs}\n{slurm.logs()}"
        )
    print(f"snakemake {' '.join(args)} through profiles/slurm: {elapsed:.0f} s")
    return result.stdout, jobs


@pytest.fixture(scope="module")
def slurm_run(crops_zip, crops_sha256, slurm, tmp_path_factory):  # no archive: skip before starting SLURM
    """The smoke configuration through --profile profiles/slurm; returns workdir, output, job records."""
    work = copy_workflow(tmp_path_factory.mktemp("slurm-smoke"))
    (work / "local.yaml").write_text(yaml.safe_dump({"data": {"url": str(crops_zip), "sha256": crops_sha256}}))
    return work, *run_on_slurm(slurm, work, "--configfile", ".test/config/config.yaml", "local.yaml")


def test_workflow_finishes(slurm_run):
    work, output, _ = slurm_run
    assert (work / "results" / "metrics" / "summary.csv").exists()
    assert (work / "results" / "report" / "index.html").exists()
    assert "100%" in output


def test_every_rule_ran_as_a_slurm_job(slurm_run):
    """One COMPLETED SLURM job per rule (the plugin puts rule_<name> in the job comment)."""
    work, _, jobs = slurm_run
    by_rule = {}
    for job in jobs:
        by_rule.setdefault(job.get("Comment", ""), []).append(job)
    assert sorted(by_rule) == sorted(f"rule_{rule}" for rule in RULES), jobs
    for rule in RULES:
        (job,) = by_rule[f"rule_{rule}"]
        assert job["JobState"] == "COMPLETED", job
        assert job["Partition"] == ("gpu" if rule in GPU_RULES else "cpu"), job
        # and its SLURM log is there (kept by the test overlay)
        assert list((work / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob(f"{job['JobId']}.log"))
    # threads -> --cpus-per-task: the torch rules ran with the smoke config's 2 threads
    for rule in GPU_RULES:
        assert by_rule[f"rule_{rule}"][0]["NumCPUs"] == "2"


def test_gpu_rules_asked_for_a_gpu(slurm_run):
    _, _, jobs = slurm_run
    for job in jobs:
        rule = job.get("Comment", "").removeprefix("rule_")
        gpu_fields = {k: v for k, v in job.items() if k.startswith("TresPer") and "gpu" in v}
        if rule in GPU_RULES:
            assert any(re.search(r"gpu[:=]1\b", v) for v in gpu_fields.values()), job
        else:
            assert not gpu_fields, job


def test_gpu_job_fell_back_to_cpu(slurm_run):
    """The fake GPU sets CUDA_VISIBLE_DEVICES but has no device: training ran on the CPU."""
    work, _, _ = slurm_run
    log = (work / "results" / "logs" / "train.log").read_text()
    assert "device cpu" in log and "epoch 6/6" in log


def test_one_image_over_two_slurm_jobs_is_joined_as_one_job_labels_it(slurm, crops_zip, tmp_path_factory):
    """Issue 16 through the SLURM profile: an image above segment.split_above_mp, labelled in
    parts by two segment_shard jobs and joined by the segment job, gets the labels and
    measurements that one job (Segmenter.to_files, here) writes."""
    work = copy_workflow(tmp_path_factory.mktemp("slurm-split"))
    (work / "images").mkdir()
    image = write_mosaic(work / "images" / "mosaic.tif", crops_zip)
    model = write_streaming_model(work / "model.pt")
    segment = {"input_dir": "images", "model": str(model), "split_above_mp": 0.5, "block_size": 128, "context": 32}
    predict = {"tile_size": 256, "overlap": 0.25, "batch_size": 4, "tta": False}
    (work / "split.yaml").write_text(yaml.safe_dump({"segment": segment, "predict": predict}))
    _, jobs = run_on_slurm(slurm, work, "segment", "--set-scatter", "segment=2", "--configfile", "split.yaml")
    comments = sorted(job.get("Comment") for job in jobs)
    assert comments == ["rule_segment", "rule_segment_shard_wildcards_1-of-2", "rule_segment_shard_wildcards_2-of-2"], jobs
    assert all(job["JobState"] == "COMPLETED" for job in jobs), jobs
    shards = work / "results" / "segment_shards"
    assert [p.name for p in sorted(shards.glob("*/parts/*"))] == ["mosaic", "mosaic"]
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    tiling = Tiling.from_config({**config["predict"], **predict}, {**config["segment"], **segment})
    one_job = tmp_path_factory.mktemp("one-job")
    row = Segmenter(model, **dataclasses.asdict(tiling)).to_files(image, one_job, ["labels", "measurements"])
    out = work / "results" / "segment"
    assert np.array_equal(tifffile.imread(out / "mosaic.tif"), tifffile.imread(one_job / "mosaic.tif"))
    assert (out / "mosaic.csv").read_bytes() == (one_job / "mosaic.csv").read_bytes()
    assert pd.read_csv(out / "summary.csv")["nuclei"].tolist() == [row["nuclei"]]
