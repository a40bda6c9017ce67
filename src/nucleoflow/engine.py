"""Inference engines: a trained U-Net as a function from image batches to class probabilities.

On CPU, OpenVINO runs the exported model fastest, then ONNX Runtime (measured in
benchmarks/throughput.py); plain PyTorch with BatchNorm folded into the convolutions and
channels_last is the fallback. On CUDA, PyTorch with bf16 autocast.
"""

import copy
import importlib.util
import io
import itertools
import logging
import os
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .device import autocast, pick_device, torch_threads
from .errors import setting
from .heads import head_of
from .model import load_model
from .options import check_engine

log = logging.getLogger(__name__)

BYTES_PER_PIXEL_PER_WIDTH = 27


class _Probabilities(nn.Module):
    """The network with its head's activation: the maps the head labels."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.head = head_of(model.config)

    def forward(self, x):
        return self.head.activation(self.model(x))


def fold_batchnorm(model):
    """Fold every eval-mode BatchNorm into the convolution before it (same outputs, fewer passes)."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module)
        for i, (conv, bn) in enumerate(itertools.pairwise(children)):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return model


def export_onnx(model, path_or_buffer, opset=17):
    """Export the model (its head's activation included) with dynamic batch, height and width."""
    model = _Probabilities(copy.deepcopy(model).cpu().eval())
    example = torch.zeros(1, model.model.config["in_channels"], 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}
    # The TorchScript exporter is deprecated but exact and needs no onnxscript; silence its notice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            path_or_buffer,
            dynamo=False,
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_axes={"image": axes, "probabilities": axes},
            opset_version=opset,
        )


class Engine:
    """Callable: float32 (N, C, H, W) normalised images -> float32 (N, n_classes, H, W) maps of
    the model's head (head.py; probabilities for the shipped models)."""

    def __init__(self, model, metadata, name):
        self.multiple = model.multiple
        self.n_classes = model.config["n_classes"]
        self.head = head_of(model.config)
        # Peak memory of a forward pass per input pixel (fp32 activations), measured (docs/notebook.md),
        # scaling with the width.
        self.bytes_per_pixel = BYTES_PER_PIXEL_PER_WIDTH * model.config["base_width"]
        self.metadata = metadata
        self.name = name


class TorchEngine(Engine):
    def __init__(self, model, metadata, device, fold=True, threads=1):
        super().__init__(model, metadata, "torch" if fold else "eager")
        self.device, self.threads = device, threads
        self.net = _Probabilities(fold_batchnorm(model) if fold else model).eval()
        self.memory_format = torch.channels_last if fold else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)

    @torch.no_grad()
    def forward(self, inputs):
        """float32 (N, C, H, W) tensor on self.device -> float32 probabilities there."""
        with torch_threads(self.threads), autocast(self.device):
            probs = self.net(inputs.contiguous(memory_format=self.memory_format))
        return probs.float()

    def __call__(self, batch):
        return self.forward(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)).cpu().numpy()


def _onnx_bytes(model):
    buffer = io.BytesIO()
    export_onnx(model, buffer)
    return buffer.getvalue()


class OpenVinoEngine(Engine):
    def __init__(self, model, metadata, threads, profile=False):
        """profile: keep per-layer timings of each call in self.request.profiling_info (benchmarks)."""
        import openvino as ov

        super().__init__(model, metadata, "openvino")
        network = ov.convert_model(io.BytesIO(_onnx_bytes(model)))  # dynamic batch, height and width
        # LATENCY: one stream using every thread on one tile (the throughput hint splits the
        # threads over streams that one caller never fills: 2x slower here).
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": profile}
        self.request = ov.Core().compile_model(network, "CPU", config).create_infer_request()

    def __call__(self, batch):
        # infer() copies the outputs (share_outputs=False), so results outlive the next call.
        return self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class OnnxEngine(Engine):
    def __init__(self, model, metadata, threads):
        import onnxruntime as ort

        super().__init__(model, metadata, "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The memory arena (on by default) reuses activation buffers between runs; without it every
        # tile pays for page faults on fresh buffers (slower: docs/notebook.md).
        self.session = ort.InferenceSession(_onnx_bytes(model), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch):
        return self.session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]


CPU_RUNTIMES = {"openvino": OpenVinoEngine, "onnx": OnnxEngine}


def _installed(module):
    return importlib.util.find_spec(module) is not None


def check_tile(tile, engine, model_path):
    """Refuse a sliding-window side the loaded network cannot take (a multiple of 2**depth),
    before any image is read: OpenVINO would return NaN probabilities, not an error. 0: chosen
    from the memory budget, always a multiple."""
    if tile % engine.multiple:
        raise ValueError(
            f"{setting('predict.tile_size')} ({tile}) must be a multiple of {engine.multiple} (2**depth) for the model {model_path}: "
            f"set it to {tile // engine.multiple * engine.multiple or engine.multiple} or {(tile // engine.multiple + 1) * engine.multiple}"
        )


def load_engine(model_path: str | os.PathLike, engine: str = "auto", threads: int = 1, device: torch.device | None = None) -> Engine:
    """The fastest engine for this machine, or the one asked for.

    auto: on CPU OpenVINO, else ONNX Runtime, whichever is installed, else PyTorch (folded,
    channels_last); PyTorch on CUDA.
    eager: the unmodified PyTorch model (NCHW, BatchNorm unfused), the reference for tests and benchmarks.
    """
    check_engine(engine)
    device = device or pick_device()
    if engine == "auto" and device.type == "cpu":
        engine = next((name for name in CPU_RUNTIMES if _installed(name)), "torch")
    if engine in CPU_RUNTIMES:
        model, metadata = load_model(model_path, "cpu")
        result = CPU_RUNTIMES[engine](model, metadata, threads)
    else:
        model, metadata = load_model(model_path, device)
        result = TorchEngine(model, metadata, device, fold=engine != "eager", threads=threads)
    log.info("inference engine: %s on %s, %d threads", result.name, "cpu" if result.name in CPU_RUNTIMES else device, threads)
    return result
