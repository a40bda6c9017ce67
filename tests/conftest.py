import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
SHARED = ROOT.parent / "shared" / "data" / "dsb2018"


@pytest.fixture(scope="session")
def dsb_zip():
    path = SHARED / "stage1_train.zip"
    if not path.exists():
        pytest.skip(f"DSB2018 archive not found at {path}: the real-data tests need ../shared/data/dsb2018")
    return path


@pytest.fixture(scope="session")
def dsb_sha256(dsb_zip):
    return (SHARED / "SHA256").read_text().split()[0]
