import importlib.util
from pathlib import Path

import pytest

# benchmarks/ is not a package, so load peak.py from its path.
_spec = importlib.util.spec_from_file_location("peak", Path(__file__).resolve().parents[1] / "benchmarks" / "peak.py")
peak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peak)


@pytest.mark.skipif(bool(peak.missing()), reason="FMA peak benchmark needs " + ", ".join(peak.missing()))
def test_fma_peak_is_physically_plausible():
    result = peak.fma_peak(seconds=0.2)
    cores = result["cores"]
    # Any x86 core with AVX2/FMA does 4-64 fp32 FLOP/cycle at 1-6 GHz; outside that the kernel or the timing is wrong.
    assert 4 * 1 * cores <= result["gflops"] <= 64 * 6 * cores
    assert len(result["per_core"]) == cores and all(rate > 0 for rate in result["per_core"])
