"""Reductions: sum/mean/max/min/var/std over axes with keepdim, argmax/argmin."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op

DIMS = [None, 0, 1, -1, (0, 2), (1, 2)]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean(device, rng, dim, keepdim):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: F.sum(t, dim, keepdim), [x], lambda a: a.sum(dim, keepdims=keepdim),
             device)
    check_op(lambda t: t.mean(dim, keepdim), [x], lambda a: a.mean(dim, keepdims=keepdim),
             device)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min(device, rng, dim, keepdim):
    x = rng.permutation(24).reshape(2, 3, 4).astype(np.float64) + rng.random((2, 3, 4)) * 0.1
    check_op(lambda t: F.max(t, dim, keepdim), [x], lambda a: a.max(dim, keepdims=keepdim),
             device)
    check_op(lambda t: t.min(dim, keepdim), [x], lambda a: a.min(dim, keepdims=keepdim),
             device)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("unbiased", [True, False])
def test_var_std(device, rng, dim, unbiased):
    x = rng.standard_normal((2, 3, 4))
    ddof = 1 if unbiased else 0
    check_op(lambda t: F.var(t, dim, False, unbiased), [x], lambda a: a.var(dim, ddof=ddof),
             device)
    check_op(lambda t: t.std(dim, True, unbiased), [x],
             lambda a: a.std(dim, ddof=ddof, keepdims=True), device)


def test_max_ties_share_gradient():
    x = minidl.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    F.max(x, 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_argmax_argmin():
    x = minidl.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 1.0]])
    assert F.argmax(x, 1).tolist() == [1, 0]
    assert x.argmin(1, keepdim=True).tolist() == [[0], [1]]
    assert F.argmax(x).item() == 3
    assert F.argmax(x).dtype == np.int64


def test_bad_dims():
    x = minidl.ones(2, 3)
    with pytest.raises(IndexError, match="sum: 'dim'=2 is out of range"):
        F.sum(x, 2)
    with pytest.raises(ValueError, match="repeated"):
        F.sum(x, (0, 0))
    with pytest.raises(TypeError, match="mean: argument 'input' must be a floating-point"):
        F.mean(minidl.tensor([1, 2]))
    with pytest.raises(ValueError, match="max: cannot reduce over an empty dimension"):
        F.max(minidl.zeros(0, 3), 0)
