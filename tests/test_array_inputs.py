"""Arrays that lie (issue 23, class 7): what Python code hands Segmenter. A masked array's mask
was dropped (whatever lay under it was segmented), a list was a traceback, and values beyond
float32's range or precision gave 0 nuclei silently (the statistics and the scaling were
float32: 1e12 plus a crop's values was one value, 1e300 times them infinite). Each case is a
committed real crop in the lying form against the honest array."""

import numpy as np
import pytest
import tifffile
from lying import DENSE_FLUORESCENCE, FLUORESCENCE, crop, matched, nuclei, outside, segment, segmenter

from nucleoflow.errors import InputError


@pytest.fixture(scope="module")
def seg():
    return segmenter()


def test_a_masked_arrays_masked_pixels_are_not_sample(seg):
    """Masked pixels are read as background and left out of the statistics, whatever their data
    (here another crop's nuclei, over a third of the crop: what a mask hides need not be sample)."""
    image = crop(FLUORESCENCE)
    band = np.zeros(image.shape, bool)
    band[:, :96] = True
    junk = image.copy()
    junk[band] = crop(DENSE_FLUORESCENCE)[band]
    honest = seg(image)
    labels = seg(np.ma.MaskedArray(junk, mask=band))
    kept = outside(honest, band)  # the honest crop's nuclei clear of the masked band
    print(f"masked: {nuclei(labels)} nuclei, {len(np.unique(labels[band])) - 1} in the band; honest {nuclei(honest)}, {nuclei(kept)} clear of it")
    assert nuclei(kept) >= 4 and not labels[band].any()
    assert matched(kept, labels) == nuclei(kept)
    np.testing.assert_array_equal(seg(np.ma.MaskedArray(image, mask=False)), honest)  # nothing masked: the array itself


def test_a_list_of_rows_is_an_image(seg):
    image = crop(DENSE_FLUORESCENCE)
    honest = seg(image)
    labels = seg(image.tolist())  # Python ints: int64
    assert nuclei(labels) == nuclei(honest) > 40 and matched(honest, labels) == nuclei(honest)
    with pytest.raises(InputError, match="image: cannot be read as an array of pixels"):
        seg([[1, 2, 3], [4, 5]])


@pytest.mark.parametrize(
    "lie",
    [
        pytest.param(lambda x: x.astype(np.float64) + 1e12, id="offset 1e12 (float32 spacing 65536)"),
        pytest.param(lambda x: x.astype(np.float64) * 1e300, id="scaled 1e300 (beyond float32)"),
        pytest.param(lambda x: x.astype(np.float64) * 1e-42, id="scaled 1e-42 (below float32's normal range)"),
        pytest.param(lambda x: x.astype(np.int64) + (1 << 40), id="int64 offset 2**40 (float32 spacing 2**17)"),
    ],
)
def test_values_beyond_float32_are_segmented_as_the_honest_crop(seg, tmp_path, lie):
    image = crop(DENSE_FLUORESCENCE)
    honest = seg(image)
    lying = lie(image)
    labels = seg(lying)
    print(f"{lying.dtype} {lying.min():.4g}..{lying.max():.4g}: {nuclei(labels)} nuclei, honest {nuclei(honest)}, matched {matched(honest, labels)}")
    assert matched(honest, labels) >= nuclei(honest) - 1
    tifffile.imwrite(tmp_path / "lying.tif", lying)  # a float64 (or int64) TIFF: the reader's path
    _, from_file, _ = segment(seg, tmp_path / "lying.tif", tmp_path / "out", ["labels"])
    assert matched(honest, from_file) >= nuclei(honest) - 1
