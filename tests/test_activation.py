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
