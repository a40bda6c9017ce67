"""Distributed training: one process per GPU (or CPU process), launched as torchrun does."""

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import pick_device
from .logs import setup_logging


@dataclass(frozen=True)
class Rank:
    world: int  # processes in the run
    rank: int  # this one's index (0 leads: validates, checkpoints, logs)
    device: torch.device

    @property
    def lead(self):
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()


def launch(processes, fn, *args):
    """fn(*args) in this process, or in `processes` processes (DistributedDataParallel; NCCL on
    GPUs, one per process; gloo on CPUs); returns rank 0's result."""
    if processes == 1:
        return fn(*args)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=f"nucleoflow-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=1,
    )
    return elastic_launch(config, fn)(*args)[0]


@contextlib.contextmanager
def joined(log_path=None):
    """This process's Rank; in a distributed run, joins the process group for the block."""
    world, rank, device = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)), pick_device()
    if world == 1:
        yield Rank(1, 0, device)
        return
    if log_path and rank == 0:  # spawned ranks start with no logging set up
        setup_logging(log_path, mode="a")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Rank(world, rank, device)
    finally:
        dist.destroy_process_group()
