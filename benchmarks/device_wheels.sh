#!/bin/bash
# Wheels (CPython 3.12, x86-64) of what benchmarks/device_check.sh needs and the GPU machine's
# image lacks (it has torch, numpy, scipy, scikit-image, tifffile, pandas, tqdm; see
# /work/.library/device/KINDS.md). Run here, in the repository root, before a GPU session:
#   bash benchmarks/device_wheels.sh   (writes .whl/, git-ignored; carry it: carry=[".whl"])
set -euo pipefail
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx "/.whl/" "$exclude" 2>/dev/null || echo "/.whl/" >> "$exclude"
mkdir -p .whl
platforms=()
for n in 2_28 2_27 2_24 2_17 2014 1; do
    case $n in 2014) platforms+=(--platform manylinux2014_x86_64) ;; 1) platforms+=(--platform manylinux1_x86_64) ;; *) platforms+=(--platform "manylinux_${n}_x86_64") ;; esac
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl \
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 \
    dask==2026.8.0 partd==1.4.2 locket==1.0.0 roifile==2026.2.10 imagecodecs==2026.3.6
du -sh .whl
