"""Device choice: CUDA when present (bf16 autocast), CPU otherwise; channels_last on both."""

import contextlib
import platform
from pathlib import Path

import torch


def pick_device():
    if torch.cuda.is_available():
        try:
            torch.zeros(1, device="cuda")
            return torch.device("cuda")
        except RuntimeError:  # CUDA_VISIBLE_DEVICES set with no usable device
            pass
    return torch.device("cpu")


def describe(device):
    """The device in words for a model card: the GPU's name, or the CPU's model and torch's threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {_cpu_model()}, {torch.get_num_threads()} threads"


def _cpu_model():
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
    except OSError:  # not Linux
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def autocast(device):
    """bf16 autocast on CUDA; plain fp32 on CPU, where bf16 is far slower without bf16 units."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def torch_threads(threads):
    """Run a block with `threads` torch intra-op threads, then give the caller back its own
    setting (a library must not leave a process-wide setting changed)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def seeded(seed, device):
    """Run a block with torch's random generators (CPU, and `device` if CUDA) seeded, then give
    the caller back their states."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def prepare(model, device):
    return model.to(device).to(memory_format=torch.channels_last)
