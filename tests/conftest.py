"""Shared fixtures: the ``device`` fixture runs a test on cpu always and on cuda when CuPy and a
GPU are present (skipped cleanly otherwise); the RNG is reseeded before every test."""
import os
import sys

import numpy as np
import pytest

if os.environ.get("MINIDL_FAKE_CUDA") == "1":      # run the cuda tests on tests/fake_cupy
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_cupy"))

import minidl  # noqa: E402
from minidl import backend  # noqa: E402
from minidl.kernels import threads  # noqa: E402

if os.environ.get("MINIDL_FAKE_CUDA") == "1":      # and cuBLAS for graph capture with it
    from minidl.kernels import cublas  # noqa: E402
    from tests.fake_cublas import FakeCublas  # noqa: E402
    cublas.use_library(FakeCublas())

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_collection_modifyitems(config, items):
    if backend.is_cuda_available():
        if os.environ.get("MINIDL_FAKE_CUDA") == "1":
            skip = pytest.mark.skip(reason="needs a real GPU, not tests/fake_cupy")
            for item in items:
                if "real_gpu" in item.keywords:
                    item.add_marker(skip)
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    minidl.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def threaded(monkeypatch):
    """Threads for every array, 3 of them (more than the 2 cores CI has: the parts are then
    uneven, and still all run)."""
    monkeypatch.setattr(threads, "_MIN_ITEMS", 1)
    old = threads.get_num_threads()
    threads.set_num_threads(3)
    yield 3
    threads.set_num_threads(old)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A tiny binary CIFAR-10 for train_cifar.py runs: 5 x 48 = 240 training images (7 steps
    of 32 per epoch) and 100 test images."""
    from tests.cifar_fake import records, write_binary_cifar10
    records(monkeypatch, 48, 100)
    write_binary_cifar10(str(tmp_path / "data"), 48, 100)
    return str(tmp_path / "data")


# MINIDL_AUDIT_GRADCHECK=1 python -m pytest -q: at the end, list every Function subclass of
# minidl whose backward no gradcheck in the run went through (run the whole suite for a
# meaningful list). The profiler sees which backward passes each gradcheck runs.
if os.environ.get("MINIDL_AUDIT_GRADCHECK") == "1":
    import importlib
    import pkgutil

    from minidl import autograd as _autograd
    from minidl import gradcheck as _gradcheck_fn
    from minidl import profiler as _profiler

    _GRADCHECKED = set()

    def _record(prof):
        _GRADCHECKED.update(r.name for r in prof.key_averages() if r.kind == "backward")

    class _Audit:
        def __call__(self, *args, **kwargs):
            if _autograd.profiler_hook is not None:
                return _gradcheck_fn(*args, **kwargs)
            prof = _profiler.profile(use_cuda=False)
            try:
                with prof:
                    return _gradcheck_fn(*args, **kwargs)
            finally:
                _record(prof)

    minidl.gradcheck = _Audit()

    def _function_classes():
        for info in pkgutil.walk_packages(minidl.__path__, "minidl."):
            importlib.import_module(info.name)
        seen, todo = set(), [minidl.Function]
        while todo:
            cls = todo.pop()
            for sub in cls.__subclasses__():
                if sub not in seen:
                    seen.add(sub)
                    todo.append(sub)
        return sorted((c.__module__, c.__name__) for c in seen
                      if c.__module__.startswith("minidl.") and "backward" in vars(c))

    def pytest_terminal_summary(terminalreporter):
        missing = [f"{m}.{n}" for m, n in _function_classes() if n not in _GRADCHECKED]
        terminalreporter.write_line(
            f"gradcheck audit: {len(_GRADCHECKED)} Function classes gradchecked; "
            f"{len(missing)} with a backward never gradchecked in this run:")
        for name in missing:
            terminalreporter.write_line(f"  {name}")
