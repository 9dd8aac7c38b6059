"""Where a training step of a registered net spends its time, op by op (minidl.profiler).

    python benchmarks/profile_step.py                              # resnet20, batch 128, cpu
    python benchmarks/profile_step.py --model densenet_bc_100:64 --device cuda --steps 20 \\
        --trace runs/trace.json

Builds the step that ``bench_train.py`` times (same model, SGD with Nesterov momentum, random
data already on the device), runs ``--warmup`` steps, then profiles ``--steps`` steps and prints
the table of ``minidl.profiler`` (per op and phase: calls, self and total time, and on a GPU the
device time from CUDA events), sorted by ``--sort``. The profile's own cost (about a
microsecond per op, more with CUDA events) is included; the step time without it comes from
``bench_train.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minidl  # noqa: E402
from benchmarks.bench_train import _MinidlEngine  # noqa: E402
from minidl import profiler  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20:128", help="NAME:BATCH (default resnet20:128)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--steps", type=int, default=5, help="profiled steps (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="steps before profiling (default 3)")
    p.add_argument("--sort", default="self", help="table order: self, total, calls, mean, "
                   "cuda_self, cuda_total or name (default self)")
    p.add_argument("--row-limit", type=int, default=25, help="table rows (default 25)")
    p.add_argument("--record-modules", action="store_true", help="also time every Module")
    p.add_argument("--record-shapes", action="store_true", help="one row per op, phase and "
                   "input shapes (which layer takes the time)")
    p.add_argument("--cuda-graph", action="store_true", help="replay the step as a CUDA graph "
                   "(the profile then shows one event per replay)")
    p.add_argument("--trace", help="also write a Chrome trace (JSON) there")
    args = p.parse_args(argv)
    name, _, batch = args.model.partition(":")
    if args.steps < 1 or args.warmup < 0 or not batch.isdigit() or int(batch) < 1:
        p.error("--steps must be >= 1, --warmup >= 0, and --model NAME:BATCH with BATCH >= 1")
    engine = _MinidlEngine(name, int(batch), args.device, tf32=False, graph=args.cuda_graph)
    for _ in range(args.warmup):
        engine.step()
    engine.sync()
    t0 = time.perf_counter()
    with profiler.profile(record_modules=args.record_modules,
                          record_shapes=args.record_shapes) as prof:
        for _ in range(args.steps):
            engine.step()
        engine.sync()
    wall = time.perf_counter() - t0
    print(f"{name} batch {batch} on {args.device}, {args.steps} profiled steps "
          f"({1000 * wall / args.steps:.1f} ms per step with profiling); {engine.version}, "
          f"{minidl.get_num_threads()} CPU threads")
    print(prof.table(sort_by=args.sort, row_limit=args.row_limit))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"trace: {args.trace}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
