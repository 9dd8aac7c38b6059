#!/usr/bin/env bash
# Everything that needs the lent GPU, in one command (run from the repository root there):
#   bash benchmarks/gpu_session.sh [quick|full]
# 1. the CUDA-parametrized tests (they skip on machines without a GPU),
# 2. per-layer and whole-step benchmarks vs PyTorch on cuda (tables into RESULTS.md),
# 3. (full) the 40-epoch default recipe on the CIFAR-10 copy in ./data (see README).
# Logs go to $OUT when set (the device tool's output folder), else to ./runs.
set -euo pipefail
mode=${1:-quick}
out=${OUT:-runs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pytest -q -m cuda 2>&1 | tee "$out/cuda_tests.log"
python3 benchmarks/bench_layers.py --device cuda --write-results 2>&1 | tee "$out/bench_layers.log"
python3 benchmarks/bench_train.py --device cuda --models resnet20:128 resnet20:512 \
    resnet56:128 densenet_bc_100:64 --write-results 2>&1 | tee "$out/bench_train.log"
python3 benchmarks/bench_train.py --device cuda --tf32 --models resnet20:128 resnet20:512 \
    resnet56:128 densenet_bc_100:64 --write-results 2>&1 | tee "$out/bench_train_tf32.log"
cp benchmarks/RESULTS.md "$out/" 2>/dev/null || true
if [ "$mode" = full ]; then
    python3 train_cifar.py --device cuda --epochs 40 --data-dir data --no-verify-md5 \
        --no-progress --out "$out/resnet20-cuda-e40" 2>&1 | tee "$out/train.log"
fi
