"""dropout / dropout2d and their modules: identity in eval, inverted scaling, keep rate, whole
channels for dropout2d, seeded masks, gradient = mask (gradcheck with a fixed seed), dtype,
bad input."""
import re

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import host, to_tensor


@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
def test_eval_and_p_zero_are_identity(device, fn):
    x = to_tensor(np.ones((2, 3, 4, 4), np.float32), device)
    assert fn(x, 0.5, training=False) is x
    assert fn(x, 0.0, training=True) is x


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_rate_and_scaling(device, p):
    x = to_tensor(np.full((200, 500), 2.0, np.float32), device)
    y = host(F.dropout(x, p))
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / (1.0 - p), rtol=1e-6)
    n = y.size
    assert abs(kept.mean() - (1.0 - p)) < 5 * np.sqrt(p * (1 - p) / n)   # 5 sigma
    assert abs(y.mean() - 2.0) < 5 * 2.0 * np.sqrt(p / (1 - p) / n)


def test_dropout2d_zeroes_whole_channels(device):
    x = to_tensor(np.ones((64, 32, 3, 3), np.float32), device)
    y = host(F.dropout2d(x, 0.5))
    per_channel = y.reshape(64, 32, 9)
    assert (per_channel.min(axis=2) == per_channel.max(axis=2)).all()
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (per_channel[:, :, 0] == 0).mean() < 0.6


def test_masks_follow_the_seed(device):
    x = to_tensor(np.ones((50, 40), np.float32), device)
    minidl.manual_seed(3)
    a = host(F.dropout(x, 0.5))
    minidl.manual_seed(3)
    b = host(F.dropout(x, 0.5))
    c = host(F.dropout(x, 0.5))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


@pytest.mark.parametrize("fn,shape", [(F.dropout, (3, 4, 5)), (F.dropout2d, (2, 3, 4, 4))])
def test_gradient_is_the_mask(device, rng, fn, shape):
    x = rng.standard_normal(shape)

    def seeded(t):
        minidl.manual_seed(11)          # the same mask on every call of the gradcheck
        return fn(t, 0.4)
    t = to_tensor(x, device, requires_grad=True)
    assert minidl.gradcheck(seeded, [t])
    y = seeded(t)
    g = rng.standard_normal(shape)
    y.backward(to_tensor(g, device))
    np.testing.assert_allclose(host(t.grad), g * host(y) / x, rtol=1e-10)


def test_modules_follow_train_and_eval(device):
    x = to_tensor(np.ones((8, 4, 5, 5), np.float32), device)
    for m in (nn.Dropout(0.5), nn.Dropout2d(0.5)):
        assert (host(m(x)) == 0).any()
        m.eval()
        assert m(x) is x
        assert list(m.parameters()) == []
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_bad_probability(p):
    x = minidl.zeros(2, 3, 4, 4)
    got = re.escape(f"must be a number in [0, 1), got {p!r}")
    with pytest.raises(ValueError, match=r"dropout: 'p' " + got):
        F.dropout(x, p)
    with pytest.raises(ValueError, match=r"dropout2d: 'p' " + got):
        F.dropout2d(x, p)
    with pytest.raises(ValueError, match=r"Dropout: 'p' " + got):
        nn.Dropout(p)
    with pytest.raises(ValueError, match=r"Dropout2d: 'p' " + got):
        nn.Dropout2d(p)


def test_bad_input():
    with pytest.raises(ValueError, match=r"dropout2d: 'input' must be 4-D \(N, C, H, W\)"):
        F.dropout2d(minidl.zeros(3, 4), 0.5)
    with pytest.raises(TypeError, match=r"dropout: argument 'input' must be a floating"):
        F.dropout(minidl.tensor([1, 2, 3]), 0.5)
    with pytest.raises(TypeError, match=r"dropout: 'training' must be a bool"):
        F.dropout(minidl.zeros(3), 0.5, training="yes")
