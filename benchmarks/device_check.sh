#!/bin/bash
# The GPU measurements of issue 16 in one prepared run (about 8 minutes of a session's 15 of
# device time), for a session lent an NVIDIA GPU. Here, first: bash benchmarks/device_wheels.sh
# (the packages the GPU machine's image lacks, into .whl/); then one device run:
#   command: bash benchmarks/device_check.sh    carry: [".whl"]    timeout_s: 560
# Each benchmark's output is printed and kept under $OUT; each has its own time limit, so one
# that hangs cannot take the others' time.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
cores=$(nproc)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
# Predict (naive fp32 whole image, numpy-blended, device-resident) and end-to-end segment, 10000 px.
timeout 270 python3 benchmarks/throughput.py --device cuda --side 10000 --threads "$cores" --workers "$cores" 2>&1 | tee "$OUT/throughput_cuda.txt"
# The postprocess in 1 and in all cores' worker processes.
timeout 120 python3 benchmarks/postprocess.py --side 8192 --workers "$cores" --threads "$cores" 2>&1 | tee "$OUT/postprocess.txt"
# One 10000 px image as one job and as 4 parts (each on the GPU, run one after another) + the gather.
timeout 150 python3 benchmarks/sharding.py --side 10000 --parts 4 --threads "$cores" --workers "$cores" 2>&1 | tee "$OUT/sharding.txt"
