"""silu, mish, elu, softplus, hardtanh, relu6, hardsigmoid, hardswish and their modules:
forward vs NumPy references (and torch), float64 gradchecks with random upstream gradients,
the gradient PyTorch defines at each kink, stability, bad input."""
import warnings

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op, host, to_tensor


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _np_softplus(a, beta=1.0, threshold=20.0):
    return np.where(a * beta > threshold, a, np.log1p(np.exp(a * beta)) / beta)


# name -> (minidl function, NumPy reference, kink points)
CASES = {
    "silu": (F.silu, lambda a: a * _sig(a), ()),
    "mish": (F.mish, lambda a: a * np.tanh(np.log1p(np.exp(a))), ()),
    "elu": (F.elu, lambda a: np.where(a > 0, a, np.exp(a) - 1.0), (0.0,)),
    "elu_0.3": (lambda t: F.elu(t, 0.3), lambda a: np.where(a > 0, a, 0.3 * (np.exp(a) - 1)),
                (0.0,)),
    "softplus": (F.softplus, _np_softplus, ()),
    "softplus_2_3": (lambda t: F.softplus(t, 2.0, 3.0), lambda a: _np_softplus(a, 2.0, 3.0),
                     (1.5,)),
    "hardtanh": (F.hardtanh, lambda a: np.minimum(np.maximum(a, -1.0), 1.0), (-1.0, 1.0)),
    "hardtanh_-2_3": (lambda t: F.hardtanh(t, -2.0, 3.0),
                      lambda a: np.minimum(np.maximum(a, -2.0), 3.0), (-2.0, 3.0)),
    "relu6": (F.relu6, lambda a: np.minimum(np.maximum(a, 0.0), 6.0), (0.0, 6.0)),
    "hardsigmoid": (F.hardsigmoid, lambda a: np.where(a <= -3, 0.0, np.where(a >= 3, 1.0,
                                                                             a / 6 + 0.5)),
                    (-3.0, 3.0)),
    "hardswish": (F.hardswish, lambda a: np.where(a <= -3, 0.0, np.where(a >= 3, a,
                                                                         a * (a + 3) / 6)),
                  (-3.0, 3.0)),
}


def _away_from(x, kinks, gap=0.05):
    """Move values within ``gap`` of a kink off it (finite differences straddle a kink)."""
    for k in kinks:
        x = np.where(np.abs(x - k) < gap, k + 2 * gap, x)
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_gradcheck(device, rng, name):
    fn, ref, kinks = CASES[name]
    x = _away_from(rng.uniform(-5.0, 8.0, (3, 5)), kinks)
    check_op(fn, [x], ref, device)


# The gradient at each kink as PyTorch defines it (its docs and derivative formulas): written
# here from those definitions, and compared with torch itself below where it is installed.
KINK_GRADS = {
    "elu": {0.0: 1.0},                     # alpha * exp(0) on the x <= 0 side
    "elu_0.3": {0.0: 0.3},
    "softplus_2_3": {1.5: _sig(3.0)},      # beta * x == threshold is not linear yet
    "hardtanh": {-1.0: 0.0, 1.0: 0.0},     # open interval (min_val, max_val)
    "hardtanh_-2_3": {-2.0: 0.0, 3.0: 0.0},
    "relu6": {0.0: 0.0, 6.0: 0.0},
    "hardsigmoid": {-3.0: 0.0, 3.0: 0.0},  # 1/6 only inside (-3, 3)
    "hardswish": {-3.0: 0.0, 3.0: 1.0},    # 0 at and below -3, 1 at and above 3
    "silu": {0.0: 0.5},                    # smooth: sigmoid(0) + 0
    "mish": {0.0: 0.6},                    # tanh(log 2) = 3/5
}


@pytest.mark.parametrize("name", sorted(KINK_GRADS))
def test_gradient_at_kinks(device, rng, name):
    fn = CASES[name][0]
    points = sorted(KINK_GRADS[name])
    x = to_tensor(np.array(points), device, requires_grad=True)
    gy = rng.standard_normal(len(points))
    fn(x).backward(minidl.tensor(gy, device=device))
    expected = [KINK_GRADS[name][p] * g for p, g in zip(points, gy)]
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-12, atol=1e-15)


def test_matches_torch_including_kinks(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    oracle = {"silu": tf.silu, "mish": tf.mish, "elu": tf.elu,
              "elu_0.3": lambda t: tf.elu(t, 0.3), "softplus": tf.softplus,
              "softplus_2_3": lambda t: tf.softplus(t, 2.0, 3.0), "hardtanh": tf.hardtanh,
              "hardtanh_-2_3": lambda t: tf.hardtanh(t, -2.0, 3.0), "relu6": tf.relu6,
              "hardsigmoid": tf.hardsigmoid, "hardswish": tf.hardswish}
    assert sorted(oracle) == sorted(CASES)
    for name, (fn, _, kinks) in CASES.items():
        x = np.concatenate([rng.uniform(-6.0, 9.0, 20), kinks, [-30.0, 30.0]])
        gy = rng.standard_normal(x.shape)
        for dtype in (np.float64, np.float32):
            t = torch.tensor(x.astype(dtype), requires_grad=True)
            m = minidl.tensor(x.astype(dtype), requires_grad=True)
            ty, my = oracle[name](t), fn(m)
            tol = 1e-12 if dtype == np.float64 else 1e-6
            np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=tol, atol=tol,
                                       err_msg=name)
            ty.backward(torch.tensor(gy.astype(dtype)))
            my.backward(minidl.tensor(gy.astype(dtype)))
            if name == "hardsigmoid":     # torch's float64 backward multiplies by a float32
                tol = max(tol, 1e-7)      # 1/6 (0.1666666716...): 3e-8 off; gradcheck is exact
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol,
                                       err_msg=name)


def test_stable_for_huge_inputs():
    x = minidl.tensor([-1e4, -800.0, 800.0, 1e4], dtype=minidl.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no overflow in a branch not taken
        for fn in (F.silu, F.mish, F.elu, F.softplus, lambda t: F.softplus(t, 1.0, 1e5)):
            y = fn(x)
            y.backward(minidl.ones_like(y))
            assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
            x.grad = None
    # softplus(x) -> x for large x even past a huge threshold; -> 0 for very negative x
    np.testing.assert_allclose(F.softplus(x, 1.0, 1e5).numpy(), [0.0, 0.0, 800.0, 1e4])


def test_softplus_beta_scales():
    x = minidl.tensor([-1.0, 0.0, 2.0], dtype=minidl.float64)
    np.testing.assert_allclose(F.softplus(x, beta=0.5).numpy(),
                               np.log1p(np.exp(0.5 * np.array([-1.0, 0.0, 2.0]))) / 0.5)


# -- modules ----------------------------------------------------------------------------------

MODULES = [(nn.SiLU(), F.silu), (nn.Mish(), F.mish), (nn.ReLU6(inplace=True), F.relu6),
           (nn.Hardsigmoid(), F.hardsigmoid), (nn.Hardswish(inplace=True), F.hardswish),
           (nn.Hardtanh(-2.0, 3.0), lambda t: F.hardtanh(t, -2.0, 3.0)),
           (nn.ELU(0.3, inplace=True), lambda t: F.elu(t, 0.3)),
           (nn.Softplus(2.0, 3.0), lambda t: F.softplus(t, 2.0, 3.0))]


@pytest.mark.parametrize("k", range(len(MODULES)))
def test_modules_call_the_functions(device, rng, k):
    m, fn = MODULES[k]
    x = to_tensor(rng.uniform(-5.0, 8.0, (2, 3, 4)).astype(np.float32), device)
    before = host(x).copy()
    y = m(x)
    np.testing.assert_array_equal(host(y), host(fn(x)))
    np.testing.assert_array_equal(host(x), before)     # inplace=True leaves the input alone
    assert y.dtype == np.float32 and list(m.parameters()) == []


def test_module_reprs():
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.SiLU()) == "SiLU()"


@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 3, 2, 2)])
def test_softmax2d(device, rng, shape):
    def ref(a):
        e = np.exp(a - a.max(axis=-3, keepdims=True))
        return e / e.sum(axis=-3, keepdims=True)

    check_op(nn.Softmax2d(), [rng.standard_normal(shape)], ref, device)


# -- bad input --------------------------------------------------------------------------------

def test_bad_input():
    for name in ("silu", "mish", "elu", "softplus", "hardtanh", "relu6", "hardsigmoid",
                 "hardswish"):
        with pytest.raises(TypeError, match=f"{name}: argument 'input' must be a floating"):
            getattr(F, name)(minidl.tensor([1, 2]))
    x = minidl.ones(3)
    with pytest.raises(TypeError, match="elu: 'alpha' must be a number, got str"):
        F.elu(x, "1")
    with pytest.raises(ValueError, match="hardtanh: 'min_val' must not exceed 'max_val'"):
        F.hardtanh(x, 2.0, 1.0)
    with pytest.raises(ValueError, match="softplus: 'beta' must be nonzero"):
        F.softplus(x, 0)
    with pytest.raises(TypeError, match="softplus: 'threshold' must be a number"):
        F.softplus(x, 1.0, None)
    with pytest.raises(ValueError, match="Hardtanh: 'max_val' must be greater than 'min_val'"):
        nn.Hardtanh(1.0, 1.0)
    with pytest.raises(TypeError, match="ELU: 'alpha' must be a number"):
        nn.ELU(alpha=True)
    with pytest.raises(ValueError, match="Softplus: 'beta' must be nonzero"):
        nn.Softplus(beta=0.0)
    with pytest.raises(ValueError, match=r"Softmax2d: expected a 3-D \(C, H, W\) or 4-D"):
        nn.Softmax2d()(minidl.ones(2, 3))


def test_hardswish_gradient_at_minus_infinity_is_zero(device):
    """Below -3 the gradient is 0 (PyTorch), also at -inf where gy * (x/3 + 1/2) is -inf."""
    x = to_tensor(np.array([-np.inf, -4.0]), device, requires_grad=True)
    with np.errstate(invalid="ignore"):                  # forward: -inf * 0 is NaN, as torch
        F.hardswish(x).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.0])
