"""Reductions: sum/mean/max/min/var/std over axes with keepdim, argmax/argmin."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op, host, to_tensor

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
    check_op(lambda t: F.var(t, dim, unbiased, False), [x], lambda a: a.var(dim, ddof=ddof),
             device)
    check_op(lambda t: t.std(dim, unbiased, True), [x],
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


def test_std_of_a_constant_slice_has_zero_gradient(device):
    """sqrt has no derivative at 0: PyTorch gives 0 there, and so must std (not NaN, which
    would poison a model that standardizes by it)."""
    x = to_tensor(np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]]), device, requires_grad=True)
    x.std(1).sum().backward()
    g = host(x.grad)
    assert np.all(g[0] == 0)
    c = np.array([1.0, 2.0, 4.0]) - 7.0 / 3.0
    np.testing.assert_allclose(g[1], c / (2 * np.sqrt((c * c).sum() / 2)), rtol=1e-12)


def test_var_std_take_pytorchs_argument_order():
    x = minidl.tensor(np.array([[1.0, 2.0, 4.0]]))
    assert x.var(1, False).item() == pytest.approx(14.0 / 9.0)      # (dim, unbiased, ...)
    assert x.std(1, True, True).shape == (1, 1)
    with pytest.raises(TypeError, match="var: 'unbiased' must be a bool, got int 2"):
        x.var(1, 2)


def test_half_precision_variance_does_not_overflow():
    x = minidl.tensor((3.0 + np.random.default_rng(0).standard_normal(200000)).astype(
        np.float16))
    v = x.var().item()
    assert x.var().dtype == np.float16 and v == pytest.approx(1.0, rel=0.02)


def test_empty_dim_means_all_dims_and_0d_dims_are_checked():
    x = minidl.ones(2, 3)
    assert x.sum(()).item() == 6.0 and x.mean([]).item() == 1.0 and x.var(()).item() == 0.0
    assert minidl.tensor(2.0).sum(0).item() == 2.0
    with pytest.raises(IndexError, match="sum: 'dim'=5 is out of range"):
        minidl.tensor(2.0).sum(5)


def test_argmax_of_nothing_and_softmax_over_nothing():
    with pytest.raises(ValueError, match=r"argmax: the input \(shape \(0,\)\) is empty"):
        minidl.zeros(0).argmax()
    with pytest.raises(ValueError, match="argmin: cannot reduce over an empty dimension 1"):
        minidl.zeros(2, 0).argmin(1)
    x = minidl.zeros(2, 0, requires_grad=True)                 # as PyTorch: empty results
    assert F.softmax(x, 1).shape == (2, 0)
    with np.errstate(divide="ignore"):
        F.log_softmax(x, 1).sum().backward()
    assert x.grad.shape == (2, 0)
