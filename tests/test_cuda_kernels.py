"""The hand-written CUDA kernels, checked without a GPU: nvcc compiles them for the H100
(sm_90), and the same source built for the host (tests/cuda_emulator.py: blocks of real
threads, shared memory, barriers) computes what the NumPy code computes when driven through
the launch code of ``minidl/kernels/cuda*.py`` (argument order, count and C types included).
On a GPU machine the ``cuda``-marked tests (test_conv.py, test_batchnorm.py, ...) run the real
thing."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import backend, kernels
from minidl.kernels import cuda, cuda_batchnorm
from tests import cuda_emulator
from tests.test_conv import KERNEL_CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def _host_build(kernels_module):
    """The host build of a kernels module's CUDA source, for a module-scoped fixture."""
    if cuda_emulator.host_compiler() is None:
        pytest.skip("needs g++")
    module = cuda_emulator.HostModule(kernels_module._SOURCE, kernels_module._NAMES)
    yield module
    module.close()


@pytest.fixture(scope="module")
def host_module():
    yield from _host_build(cuda)


@pytest.fixture
def emulated(monkeypatch, host_module):
    """Run ``minidl.kernels.cuda`` on the host: NumPy stands in for CuPy, the host build of
    the kernels for the compiled RawModule."""
    monkeypatch.setattr(backend, "cupy_module", lambda: np)
    monkeypatch.setattr(cuda._KERNELS, "module", host_module)
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


# ---------------------------------------------------------------------------------------------
# training-mode batch norm (+ReLU): kernels/cuda_batchnorm.py

@pytest.fixture(scope="module")
def bn_host_module():
    yield from _host_build(cuda_batchnorm)


@pytest.fixture
def bn_emulated(monkeypatch, bn_host_module):
    """BatchNormTrain on the host runs the emulated GPU kernels instead of its NumPy code."""
    monkeypatch.setattr(backend, "cupy_module", lambda: np)
    monkeypatch.setattr(cuda_batchnorm._KERNELS, "module", bn_host_module)
    monkeypatch.setattr(cuda_batchnorm, "supports",
                        lambda x, rm: x.dtype in (np.float32, np.float64))
    return bn_host_module


@needs_nvcc
def test_batch_norm_kernels_compile_for_the_h100():
    ptx = cuda_emulator.nvcc_ptx(cuda_batchnorm._SOURCE, cuda_batchnorm._NAMES)
    assert ptx.count(".entry") == len(cuda_batchnorm._NAMES) == 8


def _bn_run(x, affine, track, relu, gy, rng):
    """F.batch_norm(_relu) in training mode: output, running stats after, gradients."""
    C = x.shape[1]
    xt = minidl.tensor(x, requires_grad=True)
    w = minidl.tensor(rng.uniform(0.5, 1.5, C).astype(x.dtype), requires_grad=True) \
        if affine else None
    b = minidl.tensor(rng.uniform(-0.5, 0.5, C).astype(x.dtype), requires_grad=True) \
        if affine else None
    rm = minidl.tensor(rng.standard_normal(C).astype(x.dtype)) if track else None
    rv = minidl.tensor(rng.uniform(0.5, 2.0, C).astype(x.dtype)) if track else None
    fn = F.batch_norm_relu if relu else F.batch_norm
    y = fn(xt, rm, rv, w, b, training=True, momentum=0.3, eps=1e-3)
    y.backward(minidl.tensor(gy))
    out = [y.numpy(), xt.grad.numpy()]
    out += [w.grad.numpy(), b.grad.numpy()] if affine else []
    out += [rm.numpy(), rv.numpy()] if track else []
    return out


BN_CASES = [((4, 3, 5, 6), "nchw"), ((4, 3, 5, 6), "channel_major"), ((2, 3, 4, 4), "strided"),
            ((6, 5), "nchw"), ((3, 4, 7), "nchw"), ((1, 2, 1, 3), "nchw")]


def _layout(x, layout):
    if layout == "channel_major":
        return np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    if layout == "strided":
        big = np.zeros(x.shape[:2] + (2 * x.shape[2], x.shape[3] + 1), x.dtype)
        big[:, :, ::2, :-1] = x
        return big[:, :, ::2, :-1]
    return x


@needs_cxx
@pytest.mark.parametrize("shape,layout", BN_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("affine,track,relu", [(True, True, True), (True, True, False),
                                               (False, False, True), (True, False, False)])
def test_emulated_batch_norm_kernels_match_the_numpy_path(monkeypatch, bn_host_module, rng,
                                                          shape, layout, dtype, affine, track,
                                                          relu):
    x = rng.standard_normal(shape).astype(dtype) * 2 + 0.5
    gy = rng.standard_normal(shape).astype(dtype)
    seed = int(rng.integers(1 << 30))
    expected = _bn_run(x, affine, track, relu, gy, np.random.default_rng(seed))
    calls = {}
    monkeypatch.setattr(backend, "cupy_module", lambda: np)
    monkeypatch.setattr(cuda_batchnorm._KERNELS, "module", bn_host_module)
    monkeypatch.setattr(cuda_batchnorm, "supports",
                        lambda x, rm: calls.setdefault("fused", True))
    got = _bn_run(_layout(x, layout), affine, track, relu, gy, np.random.default_rng(seed))
    assert calls == {"fused": True}
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    names = ["y", "gx"] + (["gw", "gb"] if affine else []) + (["rm", "rv"] if track else [])
    for name, a, e in zip(names, got, expected):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, e, err_msg=name, **tol)


@needs_cxx
@pytest.mark.parametrize("relu", [False, True])
def test_emulated_batch_norm_kernels_pass_gradcheck(bn_emulated, rng, relu):
    x = minidl.tensor(rng.standard_normal((3, 2, 3, 4)), requires_grad=True)
    w = minidl.tensor(rng.uniform(0.5, 1.5, 2), requires_grad=True)
    b = minidl.tensor(rng.uniform(-0.3, 0.3, 2), requires_grad=True)
    fn = F.batch_norm_relu if relu else F.batch_norm
    assert minidl.gradcheck(lambda *t: fn(t[0], None, None, t[1], t[2], training=True),
                            [x, w, b])


# ---------------------------------------------------------------------------------------------
# the emulated GPU itself (tests/fake_cupy), in a child process so that this one keeps no CuPy

_FAKE_CHECKS = """
import numpy as np, cupy, minidl
from minidl import backend
a = cupy.asarray(np.arange(6.0).reshape(2, 3))
assert isinstance(a, cupy.ndarray) and backend.device_of(a) == "cuda:0"
s = a.sum()
assert isinstance(s, cupy.ndarray) and s.ndim == 0 and float(s) == 15.0   # 0-d, not a scalar
assert isinstance(a.get(), np.ndarray) and type(a.get()) is np.ndarray
for bad in (lambda: a + np.ones(3), lambda: cupy.concatenate([a, np.ones((1, 3))])):
    try:
        bad()
    except TypeError as e:
        assert "host numpy.ndarray" in str(e)
    else:
        raise AssertionError("mixing host and device arrays was accepted")
t = minidl.tensor(np.ones(3, np.float32), device="cuda") * 2
assert t.device == "cuda:0" and t.numpy().tolist() == [2.0, 2.0, 2.0]
print("ok")
"""


@needs_cxx
def test_the_emulated_gpu_behaves_like_cupy_where_it_matters(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(ROOT, "tests", "fake_cupy"), ROOT]))
    done = subprocess.run([sys.executable, "-c", _FAKE_CHECKS], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@needs_cxx
def test_emulated_batch_norm_backward_takes_a_wider_upstream_gradient(bn_emulated, rng):
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    y, mean, invstd = cuda_batchnorm.forward(x, None, None, None, None, 0.1, 1e-5, True)
    gy = rng.standard_normal(x.shape)
    wide = cuda_batchnorm.backward(gy, x, mean, invstd, None, None, True, True)
    narrow = cuda_batchnorm.backward(gy.astype(np.float32), x, mean, invstd, None, None, True,
                                     True)
    for a, b in zip(wide, narrow):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_kernel_functions_are_looked_up_once_per_module_and_dtype():
    class Module:
        def __init__(self):
            self.asked = []

        def get_function(self, name):
            self.asked.append(name)
            return (self, name)

    source = cuda.KernelSource("", ())
    source.module = first = Module()
    for _ in range(3):
        assert source.function("k", np.float32) == (first, "k<float>")
    source.function("k", np.float64)
    assert first.asked == ["k<float>", "k<double>"]
    source.module = second = Module()                # a rebuilt (or substituted) module
    assert source.function("k", np.float32) == (second, "k<float>")
    with pytest.raises(TypeError, match="k: CUDA kernels support float32 and float64, got "
                                        "float16"):
        source.function("k", np.float16)
