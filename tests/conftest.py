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
def data_dir(tmp_path, monkeypatch):
    """A tiny binary CIFAR-10 for train_cifar.py runs: 5 x 48 = 240 training images (7 steps
    of 32 per epoch) and 100 test images."""
    from tests.cifar_fake import records, write_binary_cifar10
    records(monkeypatch, 48, 100)
    write_binary_cifar10(str(tmp_path / "data"), 48, 100)
    return str(tmp_path / "data")
