"""nn.init: trunc_normal_, orthogonal_, eye_, dirac_ and calculate_gain, against closed-form
expectations (truncated-normal moments and CDF, orthogonality, the identity convolution) and
against PyTorch where it is installed (for the deterministic ones)."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn.init as init
from tests.helpers import host


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _truncnorm_moments(mean, std, a, b):
    al, be = (a - mean) / std, (b - mean) / std
    z = _cdf(be) - _cdf(al)
    pa, pb = _phi(al), (_phi(be) if math.isfinite(be) else 0.0)
    m = mean + std * (pa - pb) / z
    al_pa = al * pa if math.isfinite(al) else 0.0
    be_pb = be * pb if math.isfinite(be) else 0.0
    var = std * std * (1 + (al_pa - be_pb) / z - ((pa - pb) / z) ** 2)
    return m, math.sqrt(var)


@pytest.mark.parametrize("mean,std,a,b", [
    (0.0, 1.0, -2.0, 2.0),        # PyTorch's defaults
    (0.5, 0.02, 0.47, 0.56),      # ViT-style std, asymmetric bounds
    (1.0, 2.0, 7.0, 11.0),        # right tail, 3 to 5 std above the mean
    (0.0, 1.0, -12.0, -9.0),      # far left tail
    (0.0, 1.0, -math.inf, 0.3),   # one-sided
])
def test_trunc_normal_distribution(device, mean, std, a, b):
    n = 40000
    t = init.trunc_normal_(minidl.empty(n, device=device, dtype=minidl.float64), mean, std, a, b)
    x = host(t)
    assert t.device.type == device and t.dtype == minidl.float64
    assert x.min() >= a and x.max() <= b
    m, s = _truncnorm_moments(mean, std, a, b)
    assert abs(x.mean() - m) < 6 * s / math.sqrt(n)
    assert abs(x.std() - s) < 0.03 * s
    # Kolmogorov-Smirnov distance to the truncated normal CDF (critical value at p = 1e-6)
    al, be = (a - mean) / std, (b - mean) / std
    lo, hi = _cdf(al), _cdf(be)
    xs = np.sort(x)
    cdf = (np.array([_cdf(v) for v in (xs - mean) / std]) - lo) / (hi - lo)
    ks = np.max(np.maximum(np.arange(1, n + 1) / n - cdf, cdf - np.arange(n) / n))
    assert ks < math.sqrt(-math.log(0.5e-6) / (2 * n))


def test_trunc_normal_dtype_seed_and_errors():
    w = minidl.empty(64, 32, dtype=minidl.float16)
    init.trunc_normal_(w, std=0.5, a=-0.25, b=0.25)
    assert w.dtype == minidl.float16
    assert host(w).min() >= -0.25 and host(w).max() <= 0.25
    minidl.manual_seed(7)
    a = host(init.trunc_normal_(minidl.empty(100))).copy()
    minidl.manual_seed(7)
    b = host(init.trunc_normal_(minidl.empty(100)))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="trunc_normal_: 'std' must be positive, got 0.0"):
        init.trunc_normal_(minidl.empty(3), std=0.0)
    with pytest.raises(ValueError, match="trunc_normal_: need a < b, got a=1.0, b=1.0"):
        init.trunc_normal_(minidl.empty(3), a=1.0, b=1.0)
    with pytest.raises(TypeError, match="trunc_normal_: 'mean' must be a number, got str"):
        init.trunc_normal_(minidl.empty(3), mean="0")
    with pytest.raises(TypeError, match="trunc_normal_: expected a floating-point tensor"):
        init.trunc_normal_(minidl.zeros(3, dtype=minidl.int64))


@pytest.mark.parametrize("shape", [(5, 5), (3, 8), (8, 3), (6, 2, 3, 3), (4, 5, 1)])
def test_orthogonal(device, shape):
    t = minidl.empty(*shape, device=device)
    assert init.orthogonal_(t, gain=2.0) is t
    assert t.device.type == device and t.dtype == minidl.float32
    w = host(t).reshape(shape[0], -1).astype(np.float64)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-5)


def test_orthogonal_is_seeded_and_uniform():
    minidl.manual_seed(3)
    a = host(init.orthogonal_(minidl.empty(4, 4))).copy()
    minidl.manual_seed(3)
    np.testing.assert_array_equal(a, host(init.orthogonal_(minidl.empty(4, 4))))
    # Haar-distributed, so every entry has mean 0 (a QR without the sign fix gives diagonal
    # means near -0.4 and +0.4 here)
    ws = np.stack([host(init.orthogonal_(minidl.empty(4, 4, dtype=minidl.float64)))
                   for _ in range(400)])
    assert abs(ws.mean()) < 0.02
    assert abs(ws[:, 0, 0].mean()) < 0.1 and abs(ws[:, 3, 3].mean()) < 0.1
    with pytest.raises(ValueError, match="orthogonal_: only tensors with 2 or more dimensions"):
        init.orthogonal_(minidl.empty(4))
    with pytest.raises(TypeError, match="orthogonal_: 'gain' must be a number, got NoneType"):
        init.orthogonal_(minidl.empty(2, 2), gain=None)
    assert init.orthogonal_(minidl.empty(0, 3)).shape == (0, 3)


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2)])
def test_eye(device, shape):
    t = init.eye_(minidl.full(shape, 7.0, device=device))
    assert t.device.type == device
    np.testing.assert_array_equal(host(t), np.eye(*shape))
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(host(t), torch.nn.init.eye_(torch.empty(shape)).numpy())


def test_eye_dirac_errors():
    with pytest.raises(ValueError, match=r"eye_: only 2-D tensors are supported, got shape"):
        init.eye_(minidl.empty(2, 2, 2))
    with pytest.raises(ValueError, match=r"dirac_: only 3, 4 or 5-D tensors"):
        init.dirac_(minidl.empty(2, 2))
    with pytest.raises(ValueError, match=r"dirac_: dim 0 of the tensor \(6\) must be divisible"):
        init.dirac_(minidl.empty(6, 2, 3, 3), groups=4)
    with pytest.raises(ValueError, match="dirac_: 'groups' must be a positive int, got 0"):
        init.dirac_(minidl.empty(6, 2, 3, 3), groups=0)


@pytest.mark.parametrize("shape,groups", [((4, 4, 3, 3), 1), ((6, 2, 3, 3), 3),
                                          ((3, 5, 3), 1), ((4, 2, 3, 1, 5), 2),
                                          ((8, 3, 2, 2), 2)])
def test_dirac_matches_torch(shape, groups):
    torch = pytest.importorskip("torch")
    ours = host(init.dirac_(minidl.full(shape, 5.0), groups=groups))
    theirs = torch.nn.init.dirac_(torch.empty(shape), groups=groups).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_dirac_conv_is_identity(device):
    x = minidl.randn(2, 4, 5, 5, device=device)
    w = init.dirac_(minidl.empty(4, 4, 3, 3, device=device))
    np.testing.assert_allclose(host(F.conv2d(x, w, padding=1)), host(x), rtol=1e-6)
    wg = init.dirac_(minidl.empty(4, 2, 3, 3, device=device), groups=2)   # grouped conv too
    np.testing.assert_allclose(host(F.conv2d(x, wg, padding=1, groups=2)), host(x), rtol=1e-6)


@pytest.mark.parametrize("name,param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
    ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", 1), ("selu", None)])
def test_calculate_gain(name, param):
    expected = {"tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}.get(name, 1.0)
    if name == "leaky_relu":
        slope = 0.01 if param is None else param
        expected = math.sqrt(2.0 / (1 + slope * slope))
    assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-15)
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(name, param) == pytest.approx(
        torch.nn.init.calculate_gain(name, param), rel=1e-15)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(TypeError, match=r"calculate_gain: 'param' \(the leaky_relu negative "
                                        r"slope\) must be a number, got str '0.1'"):
        init.calculate_gain("leaky_relu", "0.1")
    with pytest.raises(TypeError, match="calculate_gain: 'param' .* got bool True"):
        init.calculate_gain("leaky_relu", True)
