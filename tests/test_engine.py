"""Every inference engine computes the same function as the trained PyTorch model."""

import numpy as np
import pytest
import torch

from nucleoflow.engine import export_onnx, fold_batchnorm, load_engine
from nucleoflow.model import UNet, save_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A U-Net with non-trivial BatchNorm statistics, so folding them has work to do."""
    torch.manual_seed(0)
    model = UNet(depth=3, base_width=8).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("engine") / "model.pt"
    save_model(model, path)
    return path


@pytest.mark.parametrize("engine", ["openvino", "onnx", "torch", "auto"])
@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 48, 80)])
def test_engines_match_eager(model_path, engine, shape):
    batch = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    reference = load_engine(model_path, "eager")(batch)
    result = load_engine(model_path, engine)(batch)
    assert result.shape == reference.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, reference, atol=1e-5)
    np.testing.assert_allclose(reference.sum(axis=1), 1, atol=1e-5)  # probabilities


def test_auto_uses_openvino_on_cpu(model_path):
    pytest.importorskip("openvino")
    assert load_engine(model_path, "auto", device=torch.device("cpu")).name == "openvino"


def test_folding_removes_batchnorm(model_path):
    from nucleoflow.model import load_model

    model, _ = load_model(model_path)
    folded = fold_batchnorm(load_model(model_path)[0])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), atol=1e-5)


def test_onnx_file_runs_in_onnxruntime(model_path, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from nucleoflow.model import load_model

    export_onnx(load_model(model_path)[0], str(tmp_path / "model.onnx"))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(1).normal(size=(1, 3, 96, 64)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"image": batch})[0], load_engine(model_path, "eager")(batch), atol=1e-5)


def test_unknown_engine_is_refused(model_path):
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'"):
        load_engine(model_path, "tensorrt")
