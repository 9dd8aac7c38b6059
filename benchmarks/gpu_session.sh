#!/usr/bin/env bash
# Everything that needs the lent GPU, run from the repository root there, in steps so that each
# device call stays under its time limit:
#   bash benchmarks/gpu_session.sh [STEP ...]   (default: tests bench; "full": prepare tests
#   bench train bench-tf32 profile)
# prepare  convert the CIFAR-10 JPEG copy carried in data/carry/ (cifar10-jpeg.tar.gz and
#          cifar_jpeg_to_bin.py, copied there from ../shared; data/ is git-ignored, so pass
#          carry=["data/carry"]) into data/cifar-10-batches-bin, unless that exists already
# tests    the CUDA-parametrized tests (they skip on machines without a GPU)
# bench    per-layer and whole-step benchmarks vs PyTorch (into RESULTS.md), float32: minidl
#          eager, then minidl's step as a CUDA graph (--cuda-graph); torch eager in both
# bench-tf32  the whole-step benchmarks again with TF32 on in both engines
# profile  per-op host and device times of the eager ResNet-20 and DenseNet-BC-100 steps
#          (benchmarks/profile_step.py; Chrome traces into the log folder)
# train    the 40-epoch default recipe on data/cifar-10-batches-bin with --cuda-graph (needs
#          prepare first); train-eager the same without it
# Logs go to $OUT when set (the device tool's output folder), else to ./runs; every step tees
# its log as it runs, so a step cut short by a time limit still leaves what it printed.
set -euo pipefail
out=${OUT:-runs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests bench)
[ "${steps[*]}" = full ] && steps=(prepare tests bench train bench-tf32 profile)
models=(resnet20:128 resnet20:512 resnet56:128 densenet_bc_100:64)
for step in "${steps[@]}"; do
    case $step in
    prepare)
        if [ ! -d data/cifar-10-batches-bin ]; then
            python3 data/carry/cifar_jpeg_to_bin.py data/carry/cifar10-jpeg.tar.gz \
                data/cifar-10-batches-bin 2>&1 | tee "$out/prepare.log"
        fi ;;
    tests)
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
            | tee "$out/gpu.txt" || true
        python3 -m pytest -q -m cuda 2>&1 | tee "$out/cuda_tests.log" ;;
    bench)
        python3 benchmarks/bench_layers.py --device cuda --write-results 2>&1 \
            | tee "$out/bench_layers.log"
        python3 benchmarks/bench_train.py --device cuda --models "${models[@]}" \
            --write-results 2>&1 | tee "$out/bench_train.log"
        python3 benchmarks/bench_train.py --device cuda --cuda-graph --models "${models[@]}" \
            --write-results 2>&1 | tee "$out/bench_train_graph.log"
        cp benchmarks/RESULTS.md "$out/" ;;
    profile)
        for m in resnet20:128 densenet_bc_100:64; do
            python3 benchmarks/profile_step.py --device cuda --model "$m" --steps 10 --record-shapes \
                --trace "$out/trace_${m%%:*}.json" 2>&1 | tee "$out/profile_${m%%:*}.log"
        done ;;
    bench-tf32)
        python3 benchmarks/bench_train.py --device cuda --tf32 --models "${models[@]}" \
            --write-results 2>&1 | tee "$out/bench_train_tf32.log"
        python3 benchmarks/bench_train.py --device cuda --tf32 --cuda-graph \
            --models "${models[@]}" --write-results 2>&1 | tee "$out/bench_train_tf32_graph.log"
        cp benchmarks/RESULTS.md "$out/" ;;
    train|train-eager)
        graph=(--cuda-graph)
        [ "$step" = train-eager ] && graph=()
        python3 train_cifar.py --device cuda --epochs 40 --data-dir data --no-verify-md5 \
            --no-progress "${graph[@]}" --out "$out/resnet20-cuda-e40-$step" 2>&1 \
            | tee "$out/$step.log" ;;
    *)
        echo "gpu_session.sh: unknown step '$step' (prepare, tests, bench, profile, bench-tf32, train," \
            "train-eager, full)" >&2
        exit 2 ;;
    esac
done
