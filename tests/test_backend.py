"""Device parsing, array module selection and the CUDA-less error messages."""
import math
import numpy as np
import pytest

import minidl
from minidl import backend


def test_device_parsing():
    assert backend.Device("cpu") == "cpu"
    assert backend.Device("cuda").index == 0 and str(backend.Device("cuda")) == "cuda:0"
    assert backend.Device("CUDA:1") == "cuda:1"
    assert backend.Device(backend.Device("cpu")) == backend.CPU
    for bad in ("gpu", "cuda:x", "cuda:-1", ""):
        with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
            backend.Device(bad)
    with pytest.raises(TypeError, match="device: expected a string"):
        backend.Device(3)


def test_get_array_module():
    assert backend.get_array_module(np.zeros(2)) is np
    assert backend.xp_of(1.0) is np
    assert minidl.get_array_module(minidl.zeros(2).data) is np


def test_to_device_cpu_is_identity():
    a = np.zeros(3)
    assert backend.to_device(a, "cpu") is a
    assert backend.device_of(a) == "cpu"


@pytest.mark.skipif(backend.is_cuda_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"minidl\[cuda1[23]\]|no CUDA GPU is visible"):
        minidl.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match=r"cuda"):
        minidl.tensor([1.0]).to("cuda")


def test_mixed_devices_are_refused(device):
    if device == "cpu":
        pytest.skip("needs two devices")
    a = minidl.ones(2, device=device)
    with pytest.raises(RuntimeError, match="different devices"):
        a + minidl.ones(2)


def test_scatter_add_repeats(device):
    xp = backend.array_module_for(device)
    t = xp.zeros(4)
    backend.scatter_add(t, xp.asarray([0, 0, 3]), xp.asarray([1.0, 2.0, 5.0]))
    np.testing.assert_allclose(backend.as_numpy(t), [3, 0, 0, 5])


def test_tf32_is_off_by_default_and_checked():
    assert minidl.tf32_enabled() is False
    minidl.set_tf32(False)                               # a no-op anywhere
    with pytest.raises(TypeError, match="set_tf32: 'enabled' must be a bool, got str 'on'"):
        minidl.set_tf32("on")
    if not backend.is_cuda_available():
        with pytest.raises(RuntimeError, match="needs CuPy and a CUDA GPU"):
            minidl.set_tf32(True)
        assert minidl.tf32_enabled() is False


@pytest.mark.cuda
@pytest.mark.real_gpu
def test_tf32_changes_float32_matmul_precision_on_the_gpu():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
    exact = a @ b

    def rel_error():
        got = (minidl.tensor(a.astype(np.float32), device="cuda")
               @ minidl.tensor(b.astype(np.float32), device="cuda")).numpy()
        return np.abs(got - exact).max() / np.abs(exact).max()
    try:
        assert rel_error() < 1e-5                       # float32 arithmetic
        minidl.set_tf32(True)
        assert minidl.tf32_enabled() and rel_error() > 1e-5     # 10-bit mantissa inputs
    finally:
        minidl.set_tf32(False)
    assert rel_error() < 1e-5


def test_gelu_and_erf_of_a_0d_tensor():
    import minidl.functional as F
    x = minidl.tensor(np.float32(0.5), requires_grad=True)
    y = F.gelu(x)
    assert y.shape == () and y.dtype == np.float32
    np.testing.assert_allclose(y.item(), 0.25 * (1 + math.erf(0.5 / math.sqrt(2))), rtol=1e-6)
    y.backward()
    assert x.grad.shape == ()
    out = backend.erf(np.array(0.5))
    assert out.shape == () and out.dtype == np.float64 and out == math.erf(0.5)


@pytest.mark.cuda
def test_pending_device_checks_are_read_back_together(monkeypatch):
    import cupy
    reads = []
    for name in ("get", "item", "__bool__"):
        real = getattr(cupy.ndarray, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            reads.append(_name)
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(cupy.ndarray, name, counted)
    made = []

    def error(i):
        def make():
            made.append(i)
            return ValueError(f"check {i} failed")
        return make
    flags = [cupy.zeros((), bool) for _ in range(6)]
    for i, f in enumerate(flags):
        assert backend.check_later(f, error(i))
    backend.check_deferred()
    assert reads == ["get"] and made == []
    flags[2].fill(True)
    flags[4].fill(True)
    reads.clear()
    for i, f in enumerate(flags):
        backend.check_later(f, error(i))
    with pytest.raises(ValueError, match="check 2 failed .found on the GPU"):
        backend.check_deferred()
    assert reads == ["get"] and made == [2] and backend._deferred == []


def test_normal_cdf_accuracy():
    """Phi on the host: float64 exact (math.erf); float32/float16 by a rational erfc fit, at
    the dtype's rounding level (relative near 0 and in the left tail, where GELU needs it)."""
    xs = np.concatenate([np.linspace(-9, 9, 20001), np.logspace(-8, 0.5, 200),
                         -np.logspace(-8, 0.5, 200), [0.0]])
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xs])
    got64 = backend.normal_cdf(xs)
    # erfc's own conditioning: rounding x / sqrt 2 moves erfc by 2 z^2 eps relative (1e-14 at 9)
    np.testing.assert_allclose(got64, exact, rtol=5e-14, atol=0)
    x32 = xs.astype(np.float32)
    exact32 = np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in x32])
    got32 = backend.normal_cdf(x32)
    assert got32.dtype == np.float32 and got32.shape == xs.shape
    rel = np.abs(got32 - exact32) / exact32
    assert rel[np.abs(x32) <= 3].max() < 2e-6 and rel[np.abs(x32) <= 9].max() < 2e-5
    assert np.abs(got32 - exact32).max() < 3e-7
    got16 = backend.normal_cdf(x32.astype(np.float16))
    assert got16.dtype == np.float16
    np.testing.assert_allclose(got16.astype(np.float64), exact32, rtol=2e-3, atol=1e-3)
    assert backend.normal_cdf(np.float32(0.5) * np.ones((), np.float32)).shape == ()
