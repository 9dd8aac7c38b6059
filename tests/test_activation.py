"""Activations: forward vs NumPy references, float64 gradchecks, stability, bad input."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op


def _away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


_erf = np.vectorize(math.erf)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4)])
def test_pointwise_activations(device, rng, shape):
    x = _away_from_zero(rng, shape)
    check_op(F.relu, [x], lambda a: np.maximum(a, 0), device)
    check_op(lambda t: F.leaky_relu(t, 0.2), [x], lambda a: np.where(a > 0, a, 0.2 * a), device)
    check_op(F.sigmoid, [x], lambda a: 1 / (1 + np.exp(-a)), device)
    check_op(F.tanh, [x], np.tanh, device)
    check_op(F.gelu, [x], lambda a: a * 0.5 * (1 + _erf(a / np.sqrt(2))), device)
    check_op(lambda t: F.gelu(t, approximate="tanh"), [x],
             lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3))),
             device)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax(device, rng, dim):
    x = rng.standard_normal((3, 5)) * 3
    check_op(lambda t: F.softmax(t, dim), [x], lambda a: _np_softmax(a, dim), device)
    check_op(lambda t: F.log_softmax(t, dim), [x], lambda a: np.log(_np_softmax(a, dim)),
             device)


def test_softmax_3d_middle_axis(device, rng):
    x = rng.standard_normal((2, 4, 3))
    check_op(lambda t: F.softmax(t, 1), [x], lambda a: _np_softmax(a, 1), device)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)])
def test_softmax_without_dim_takes_pytorchs_legacy_dim_and_warns(rng, shape):
    """PyTorch picks dim 0 for 0-, 1- and 3-D inputs and dim 1 otherwise (deprecated there):
    a port of ``nn.Softmax()`` on an NCHW batch must normalize the channels, not the width."""
    x = rng.standard_normal(shape)
    dim = 0 if len(shape) in (1, 3) else 1
    for fn, ref in ((F.softmax, _np_softmax(x, dim)),
                    (F.log_softmax, np.log(_np_softmax(x, dim))),
                    (minidl.nn.Softmax(), _np_softmax(x, dim)),
                    (minidl.nn.LogSoftmax(), np.log(_np_softmax(x, dim)))):
        with pytest.warns(UserWarning, match=f"no 'dim' given.*takes dim={dim}"):
            y = fn(minidl.tensor(x))
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_dtype_casts_the_input_first(rng, op):
    x32 = rng.standard_normal((3, 4)).astype(np.float32)
    x = minidl.tensor(x32, requires_grad=True)
    y = getattr(F, op)(x, 1, dtype=minidl.float64)
    ref = _np_softmax(x32.astype(np.float64), 1)
    assert y.dtype == minidl.float64
    np.testing.assert_allclose(y.numpy(), ref if op == "softmax" else np.log(ref), rtol=1e-12)
    assert getattr(x, op)(1, minidl.float64).dtype == minidl.float64
    g = rng.standard_normal((3, 4))
    y.backward(minidl.tensor(g))
    x64 = minidl.tensor(x32.astype(np.float64), requires_grad=True)
    getattr(F, op)(x64, 1).backward(minidl.tensor(g))
    assert x.grad.dtype == minidl.float32
    np.testing.assert_allclose(x.grad.numpy(), x64.grad.numpy().astype(np.float32), rtol=1e-6)
    with pytest.raises(TypeError, match=f"{op}: dtype must be floating point, got int64"):
        getattr(F, op)(x, 1, dtype=minidl.int64)


def test_stable_for_huge_logits():
    x = minidl.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], requires_grad=True)
    for y in (F.softmax(x, 1), F.log_softmax(x, 1), F.sigmoid(x)):
        assert np.isfinite(y.numpy()).all()
        y.backward(minidl.ones_like(y))
        assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(F.sigmoid(minidl.tensor([-800.0, 800.0])).numpy(), [0.0, 1.0])


def test_relu_grad_zero_at_zero():
    x = minidl.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_bad_input():
    with pytest.raises(TypeError, match="relu: argument 'input' must be a floating-point"):
        F.relu(minidl.tensor([1, 2]))
    with pytest.raises(ValueError, match="gelu: 'approximate'"):
        F.gelu(minidl.ones(2), approximate="fast")
    with pytest.raises(IndexError, match="softmax: 'dim'=2 is out of range"):
        F.softmax(minidl.ones(2, 3), 2)
