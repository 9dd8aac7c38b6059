"""Count the device array operations of one training step on the GPU code path, without a GPU.

    python benchmarks/count_device_ops.py --models resnet20:8 densenet_bc_100:4 --write-results

Small CIFAR nets on a GPU are limited by launches, not arithmetic: every CuPy operation costs
the host about 8 us to issue, however small its array (../shared/GPU_NOTES.md), so the number of
operations in a step bounds how fast the step can be. The count does not depend on the GPU, so
it is taken on the emulated one (tests/fake_cupy): every array operation a step issues through
CuPy's API is counted (ufuncs, array functions and methods, allocations, copies, element
assignments, hand-written kernel launches). An allocation from CuPy's pool launches nothing
but still costs host time, so it counts too. The count is for the second step (the first one
creates optimizer state), with the levers switched off one by one: the batch-norm kernels
(kernels/cuda_batchnorm.py) and the fused optimizer (optim/flat.py); the last column is a
step replayed as a CUDA graph (minidl.cuda_graph): what the host issues around the graph's
launch (the batch copied into the captured inputs, the optimizer's device scalars), plus the
launch itself.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "fake_cupy"))
sys.path.insert(0, ROOT)

import cupy  # noqa: E402  (the fake, from tests/fake_cupy)

from benchmarks._common import RESULTS, sgd_step, write_section  # noqa: E402
from tests import cuda_emulator  # noqa: E402

_counts = collections.Counter()
_where = ["engine, optimizer"]


def _count():
    if _where[-1] is not None:          # None: inside a graph's replay, which the GPU runs
        _counts[_where[-1]] += 1


def _counting(fn):
    def call(*args, **kwargs):
        _count()
        return fn(*args, **kwargs)
    return call


def _instrument():
    nd = cupy.ndarray
    nd.__array_ufunc__ = _counting(nd.__array_ufunc__)
    nd.__array_function__ = _counting(nd.__array_function__)
    for name in ("sum", "mean", "max", "min", "var", "std", "prod", "argmax", "argmin", "any",
                 "all", "dot", "cumsum", "clip", "round"):
        setattr(nd, name, _counting(getattr(nd, name)))
    for name in ("astype", "copy"):
        method = getattr(np.ndarray, name)
        setattr(nd, name, _counting(lambda self, *a, _m=method, **k: _m(self, *a, **k).view(nd)))
    nd.__setitem__ = _counting(nd.__setitem__)
    nd.fill = _counting(nd.fill)
    wrap = cupy._function
    cupy._function = lambda f: _counting(wrap(f))
    cuda_emulator._HostKernel.__call__ = _counting(cuda_emulator._HostKernel.__call__)
    launch = cupy.cuda.Graph.launch

    def replay(self, *args, **kwargs):
        _where.append(None)
        try:
            return launch(self, *args, **kwargs)
        finally:
            _where.pop()
    cupy.cuda.Graph.launch = replay

    from minidl import autograd
    call = autograd.Function.__call__

    def function_call(self, *args, **kwargs):
        _where.append(f"{type(self).__name__} forward")
        try:
            return call(self, *args, **kwargs)
        finally:
            _where.pop()
    autograd.Function.__call__ = function_call
    classes, todo = set(), [autograd.Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            classes.add(sub)
            todo.append(sub)
    for cls in classes:
        if "backward" in cls.__dict__:
            def backward(self, *gys, _b=cls.__dict__["backward"], _n=cls.__name__):
                _where.append(f"{_n} backward")
                try:
                    return _b(self, *gys)
                finally:
                    _where.pop()
            cls.backward = backward


def count_step(name, batch, fused, bn_kernels, graph=False):
    """(total, Counter by where) for the second training step of ``name`` (with ``graph``, a
    replay of the captured step)."""
    import minidl
    import minidl.functional as F
    import nets
    from minidl.kernels import cublas, cuda_batchnorm
    from tests.fake_cublas import FakeCublas
    cublas.use_library(FakeCublas())
    minidl.manual_seed(0)
    model = nets.get_model(name).to("cuda")
    opt = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                           weight_decay=5e-4, fused=fused)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32), device="cuda")
    y = minidl.tensor(rng.integers(0, 10, batch), device="cuda")
    supports = cuda_batchnorm.supports
    if not bn_kernels:
        cuda_batchnorm.supports = lambda x, running_mean: False
    step = sgd_step(model, opt, F)
    run = minidl.cuda_graph.GraphedStep(step) if graph else step
    try:
        for _ in range(4 if graph else 2):      # a graph: two warm-up calls, the capture
            _counts.clear()
            run(x, y)
    finally:
        cuda_batchnorm.supports = supports
    if graph:
        _counts["graph launch"] += 1
    return sum(_counts.values()), collections.Counter(_counts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet20:8", "densenet_bc_100:4"],
                    help="name[:batch] entries (the count does not depend on the batch)")
    ap.add_argument("--write-results", nargs="?", const=RESULTS, default=None)
    args = ap.parse_args(argv)
    _instrument()
    lines = ["| model | per-parameter SGD, BN as array ops | + BN kernels | + fused SGD | "
             "as a CUDA graph |", "|---|---:|---:|---:|---:|"]
    breakdown = []
    for entry in args.models:
        name, _, b = entry.partition(":")
        totals = [count_step(name, int(b or 8), fused, bn)[0]
                  for fused, bn in ((False, False), (False, True))]
        total, where = count_step(name, int(b or 8), True, True)
        graphed = count_step(name, int(b or 8), True, True, graph=True)[0]
        lines.append(f"| {name} | {totals[0]} | {totals[1]} | {total} | {graphed} |")
        print(lines[-1], flush=True)
        top = ", ".join(f"{k} {v}" for k, v in where.most_common(6))
        breakdown.append(f"- {name}, all levers on, largest shares: {top}.")
    print("\n".join(lines + [""] + breakdown))
    if args.write_results:
        head = "## Device operations per training step (GPU code path, counted)"
        text = "\n".join([head, "", "`python benchmarks/count_device_ops.py --models "
                          f"{' '.join(args.models)}`: array operations one SGD training step "
                          "issues through CuPy's API (kernel launches, allocations, copies), "
                          "counted on the emulated GPU of tests/fake_cupy; each costs the host "
                          "about 8 us on the H100 machine whatever its size. Not a timing.", ""]
                         + lines + [""] + breakdown) + "\n"
        write_section(args.write_results, head, text)
        print(f"wrote {args.write_results}")


if __name__ == "__main__":
    main()
