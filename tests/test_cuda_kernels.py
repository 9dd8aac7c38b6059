"""The hand-written CUDA kernels, checked without a GPU: nvcc compiles them for the H100
(sm_90), and the same source built for the host (tests/cuda_emulator.py) computes what the
NumPy reference computes when driven through the launch code of ``minidl/kernels/cuda.py``
(argument order, count and C types included). On a GPU machine the ``cuda``-marked tests in
test_conv.py run the real thing."""
import shutil

import numpy as np
import pytest

from minidl import backend, kernels
from minidl.kernels import cuda
from tests import cuda_emulator
from tests.test_conv import KERNEL_CASES

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
needs_cxx = pytest.mark.skipif(cuda_emulator.host_compiler() is None, reason="needs g++")


@needs_nvcc
def test_kernels_compile_for_the_h100():
    ptx = cuda_emulator.nvcc_ptx(cuda._SOURCE, cuda._NAMES)
    assert ".target sm_90" in ptx
    assert ptx.count(".entry") == len(cuda._NAMES)


@needs_nvcc
def test_nvcc_check_fails_on_a_broken_kernel():
    broken = cuda._SOURCE.replace("col[idx] = v;", "col[idx] = v")
    with pytest.raises(cuda_emulator.CompileError, match="error"):
        cuda_emulator.nvcc_ptx(broken, cuda._NAMES)


@pytest.fixture(scope="module")
def host_module():
    if cuda_emulator.host_compiler() is None:
        pytest.skip("needs g++")
    module = cuda_emulator.HostModule(cuda._SOURCE, cuda._NAMES)
    yield module
    module.close()


@pytest.fixture
def emulated(monkeypatch, host_module):
    """Run ``minidl.kernels.cuda`` on the host: NumPy stands in for CuPy, the host build of
    the kernels for the compiled RawModule."""
    monkeypatch.setattr(backend, "cupy_module", lambda: np)
    monkeypatch.setattr(cuda, "_module", host_module)
    return host_module


@needs_cxx
@pytest.mark.parametrize("shape,k,s,p,d", KERNEL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulated_kernels_agree_with_reference(emulated, rng, shape, k, s, p, d, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    xcm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # CNHW memory
    col = kernels.reference.im2col(x, k, s, p, d)
    for inp in (x, xcm, x[:, :, ::-1][:, :, ::-1]):      # contiguous, channel-major, reversed
        np.testing.assert_array_equal(cuda.im2col(inp, k, s, p, d), col)
    if s == (1, 1):
        Wp = shape[3] + 2 * p[1]
        wide = cuda.im2col(xcm, k, s, p, d, row_width=Wp)
        np.testing.assert_array_equal(wide[..., :col.shape[5]], col)
    g = rng.standard_normal(col.shape).astype(dtype)
    gx = cuda.col2im(g, shape, s, p, d)
    assert gx.shape == shape and gx.dtype == dtype
    np.testing.assert_allclose(gx, kernels.reference.col2im(g, shape, s, p, d),
                               rtol=1e-5, atol=1e-5)


@needs_cxx
def test_emulated_kernels_handle_empty_and_fill_a_given_buffer(emulated, rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    out = np.full((3, 3, 3, 2, 4, 4), np.nan, np.float32)
    assert cuda.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1), out=out) is out
    np.testing.assert_array_equal(out, kernels.reference.im2col(x, (3, 3), (1, 1), (1, 1),
                                                                (1, 1)))
    empty = np.zeros((0, 3, 4, 4), np.float32)
    assert cuda.im2col(empty, (3, 3), (1, 1), (1, 1), (1, 1)).shape == (3, 3, 3, 0, 4, 4)


@needs_cxx
def test_emulator_refuses_wrong_argument_types(host_module):
    kernel = host_module.get_function("col2im_kernel<float>")
    col, gx = np.zeros(4, np.float32), np.zeros(4, np.float32)
    good = [col, gx, np.int64(4)] + [np.int32(1)] * 13
    kernel((1,), (1,), good)
    assert kernel.calls == 1
    with pytest.raises(TypeError, match="argument 2 must be a NumPy int64 scalar"):
        kernel((1,), (1,), good[:2] + [np.int32(4)] + good[3:])
    with pytest.raises(TypeError, match="argument 3 must be a NumPy int32 scalar, got int"):
        kernel((1,), (1,), good[:3] + [1] + good[4:])
    with pytest.raises(TypeError, match="argument 0 must be a float32 array"):
        kernel((1,), (1,), [col.astype(np.float64)] + good[1:])
    with pytest.raises(TypeError, match="takes 16 arguments, got 15"):
        kernel((1,), (1,), good[:-1])
