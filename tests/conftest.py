from pathlib import Path

import pytest
from user_images import KINDS

ROOT = Path(__file__).resolve().parents[1]
# Committed with the repository: 38 crops (<= 256 px) of DSB2018 validation images with their
# labels (CC0; .test/data/README.md), so every real-image test runs on a fresh clone.
CROPS = ROOT / ".test" / "data"
# Optional: the full archive beside the project, for the long `realdata` tests.
SHARED = ROOT.parent / "shared" / "data" / "dsb2018"


@pytest.fixture(scope="session")
def crops_zip():
    return CROPS / "dsb2018_crops.zip"


@pytest.fixture(scope="session")
def crops_sha256(crops_zip):
    return (CROPS / "SHA256").read_text().split()[0]


@pytest.fixture(scope="session")
def dsb_zip():
    path = SHARED / "stage1_train.zip"
    if not path.exists():
        pytest.skip(f"full DSB2018 archive not found at {path}: this realdata test needs ../shared/data/dsb2018")
    return path


@pytest.fixture(scope="session")
def segment_user_image(tmp_path_factory, crops_zip):
    """kind -> user_images.Segmented: each of user_images.KINDS segmented once a session."""
    from user_images import segment_user_image as segment

    done = {}

    def segmented(kind):
        if kind not in done:
            done[kind] = segment(kind, tmp_path_factory.mktemp(kind), crops_zip)
        return done[kind]

    return segmented


@pytest.fixture(scope="session", params=KINDS)
def segmented_image(request, segment_user_image):
    """A gray, an RGB and a multichannel image with a pixel size, segmented with every output
    (user_images.py)."""
    return segment_user_image(request.param)
