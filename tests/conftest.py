"""Shared fixtures: the ``device`` fixture runs a test on cpu always and on cuda when CuPy and a
GPU are present (skipped cleanly otherwise); the RNG is reseeded before every test."""
import numpy as np
import pytest

import minidl
from minidl import backend

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_collection_modifyitems(config, items):
    if backend.is_cuda_available():
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
