"""The prepared dataset (results/data: manifest.csv, images/<id>.tif, labels/<id>.tif) read back
by the rules after preprocess.

preprocess decoded every image through reader.py into the network's channels, (H, W, 1 or 3),
and wrote that array (atomic.write_tiff); reading it back is reading the array, nothing more.
So the rules that read the prepared data (train above all) depend on it, not on reader.py: an
edit of the reader reruns preprocess, and they rerun only through the data it writes; and no
image is decoded twice (a second pass of the reader would look for fills again in pixels it had
already set to background).
"""

import tifffile


def read_prepared(path):
    """One prepared image, (H, W, 1 or 3), as preprocess wrote it."""
    image = tifffile.imread(path)
    return image.reshape(image.shape[0], image.shape[1], -1)
