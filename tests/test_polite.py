"""The library is polite in someone else's process: importing and calling it leaves the
process-wide settings (umask, Pillow's limits, matplotlib's backend, torch's threads and RNG,
signal handlers) as the caller had them. Each check runs in a fresh interpreter."""

import os
import subprocess
import sys
import textwrap

import pytest

# The configured backend as matplotlib.use would set it (get_backend() would import pyplot).
BACKEND = 'def backend(matplotlib):\n    return dict.__getitem__(matplotlib.rcParams, "backend")\n'


def run(code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MPLBACKEND": ""}
    result = subprocess.run([sys.executable, "-c", BACKEND + textwrap.dedent(code)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_changes_no_process_settings():
    run("""
        import os
        calls = []
        real_umask = os.umask
        os.umask = lambda mask: calls.append(mask) or real_umask(mask)
        import PIL.Image, matplotlib
        before = (PIL.Image.MAX_IMAGE_PIXELS, backend(matplotlib))
        import nucleoflow.cli, nucleoflow.train, nucleoflow.report, nucleoflow.curves  # noqa
        import nucleoflow.atomic, nucleoflow.logs, nucleoflow.clobber, nucleoflow.reader, nucleoflow.prepared  # noqa
        after = (PIL.Image.MAX_IMAGE_PIXELS, backend(matplotlib))
        assert not calls, f"os.umask called at import: {calls}"
        assert before == after, (before, after)
    """)


def test_outputs_get_the_processes_umask(tmp_path):
    """Atomic outputs get 0666 less the umask, as a plain open() gives, without reading the umask."""
    run(f"""
        import os, numpy as np
        os.umask(0o027)
        from nucleoflow.atomic import write_tiff
        write_tiff({str(tmp_path / "a.tif")!r}, np.zeros((4, 4), np.uint8))
        assert oct(os.stat({str(tmp_path / "a.tif")!r}).st_mode & 0o777) == oct(0o640)
    """)


def test_decoding_and_plotting_leave_pillow_and_matplotlib_alone(tmp_path):
    run(f"""
        import io, sys, numpy as np, pandas as pd, PIL.Image, matplotlib
        before = (PIL.Image.MAX_IMAGE_PIXELS, backend(matplotlib))
        from nucleoflow.decode import decode_image
        from nucleoflow.curves import plot_history
        buf = io.BytesIO(); PIL.Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, "PNG")
        assert decode_image(buf.getvalue(), "a.png").shape == (8, 8, 1)  # the network channels (decode.open_bytes)
        history = pd.DataFrame({{"epoch": [1, 2], "train_loss": [1, .5], "val_loss": [1, .6], "val_dsb": [.1, .2]}})
        plot_history(history, {str(tmp_path / "curves.png")!r})
        assert (PIL.Image.MAX_IMAGE_PIXELS, backend(matplotlib)) == before
        assert "matplotlib.pyplot" not in sys.modules  # no figure registry kept in the caller's process
    """)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("engine", ["torch", "openvino"])
def test_segmenter_restores_torch_threads(engine):
    run(f"""
        import numpy as np, torch
        torch.set_num_threads(3)
        from nucleoflow.segment import Segmenter
        segmenter = Segmenter("dsb2018_unet", threads=1, engine={engine!r}, tta=False)
        assert torch.get_num_threads() == 3
        segmenter(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
        assert torch.get_num_threads() == 3, torch.get_num_threads()
    """)


def test_labelling_workers_leave_no_process_and_the_start_method_unset():
    """Workers are spawned from a context object; Python's spawning fixes the process-wide start
    method as a side effect, which the pool undoes."""
    run("""
        import multiprocessing, numpy as np
        from nucleoflow.blocks import label_probability_bands
        from nucleoflow.options import Tiling
        probs = np.eye(3, dtype=np.float32)[(np.indices((256, 256)) // 16).sum(axis=0) % 2].transpose(2, 0, 1)  # a checkerboard of nuclei
        bands = label_probability_bands(iter([(0, probs)]), (256, 256), Tiling(block=64, context=16), workers=2)
        assert np.concatenate([rows for _, rows in bands]).max() == 128
        assert multiprocessing.get_start_method(allow_none=True) is None
        assert multiprocessing.active_children() == []
    """)


def test_training_restores_signal_handler_threads_and_random_state(crops_zip, tmp_path):
    run(f"""
        import signal, torch
        from nucleoflow.dataset import build_dataset
        from nucleoflow.train import train
        from nucleoflow.best_epoch import pick_best
        mine = lambda signum, frame: None
        signal.signal(signal.SIGTERM, mine)
        torch.set_num_threads(3)
        torch.manual_seed(123)
        state = torch.get_rng_state()
        build_dataset({str(crops_zip)!r}, {str(tmp_path / "data")!r}, max_images=6, seed=1, val_fraction=0.3, test_fraction=0.2)
        training = dict(epochs=1, samples_per_epoch=8, batch_size=4, crop_size=64, learning_rate=1e-3, weight_decay=0.0, modality_balance=0.5, seed=0)
        out = {str(tmp_path)!r}
        train(out + "/data", out + "/epochs", out + "/training", dict(depth=2, base_width=4, norm="batch"), training, threads=1)
        pick_best(out + "/epochs", out + "/data", out + "/model.pt", out + "/history.csv", threads=1)
        assert signal.getsignal(signal.SIGTERM) is mine
        assert torch.get_num_threads() == 3
        assert torch.equal(torch.get_rng_state(), state)
    """)
    assert (tmp_path / "model.pt").exists()
