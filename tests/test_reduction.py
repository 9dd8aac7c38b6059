"""Reductions: sum/mean/prod/amax/amin/max/min/var/std/logsumexp/norm over axes with keepdim,
cumsum, all/any, argmax/argmin; sort/argsort/topk (functional.sorting)."""
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


def _distinct(rng, shape):
    """Values at least 0.1 apart (no ties, so max/sort positions are unambiguous)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) + rng.random(shape) * 0.1).astype(np.float64)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_amax_amin(device, rng, dim, keepdim):
    x = _distinct(rng, (2, 3, 4))
    check_op(lambda t: F.amax(t, dim, keepdim), [x], lambda a: a.max(dim, keepdims=keepdim),
             device)
    check_op(lambda t: t.amin(dim, keepdim), [x], lambda a: a.min(dim, keepdims=keepdim),
             device)


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_over_a_dim_give_values_and_indices(device, rng, dim, keepdim):
    x = _distinct(rng, (2, 3, 4))

    def ref(a, pick):
        idx = (np.argmax if pick == "max" else np.argmin)(a, axis=dim)
        vals = np.take_along_axis(a, np.expand_dims(idx, dim), dim)
        return (vals, np.expand_dims(idx, dim)) if keepdim else (vals.squeeze(dim), idx)

    check_op(lambda t: F.max(t, dim, keepdim), [x], lambda a: ref(a, "max"), device)
    check_op(lambda t: t.min(dim, keepdim), [x], lambda a: ref(a, "min"), device)
    out = F.max(to_tensor(x, device), dim, keepdim)
    assert out.indices.dtype == np.int64 and out.values is out[0] and out.indices is out[1]
    assert type(out).__name__ == "max" and type(F.min(to_tensor(x), 0)).__name__ == "min"


def test_max_unpacks_values_and_indices_as_pytorch(device, rng):
    logits = to_tensor(rng.standard_normal((2, 5)), device)       # a batch of 2
    _, predicted = logits.max(1)
    assert predicted.shape == (2,) and predicted.dtype == np.int64
    np.testing.assert_array_equal(host(predicted), host(logits).argmax(1))
    m = minidl.max(logits)
    assert m.shape == () and m.item() == host(logits).max()
    assert minidl.min(logits).item() == host(logits).min()
    torch = pytest.importorskip("torch")
    xt = torch.tensor(host(logits))
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            v, i = logits.max(dim, keepdim)
            tv, ti = xt.max(dim, keepdim)
            np.testing.assert_array_equal(host(v), tv.numpy())
            np.testing.assert_array_equal(host(i), ti.numpy())


def test_max_over_a_dim_sends_the_whole_gradient_to_the_first_maximum(device):
    x = to_tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]), device, requires_grad=True)
    values, indices = x.max(1)
    (values * to_tensor(np.array([10.0, 20.0]), device)).sum().backward()
    np.testing.assert_array_equal(host(indices), [1, 0])
    np.testing.assert_array_equal(host(x.grad), [[0, 10, 0], [20, 0, 0]])
    x.grad = None
    values, indices = x.min(1, keepdim=True)
    values.sum().backward()
    np.testing.assert_array_equal(host(indices), [[0], [1]])
    np.testing.assert_array_equal(host(x.grad), [[1, 0, 0], [0, 1, 0]])


def test_max_of_0d_tensor_and_with_other_tensor(device):
    x = to_tensor(np.array(3.0), device, requires_grad=True)
    v, i = x.max(0)
    assert v.shape == () and i.shape == () and i.item() == 0 and v.item() == 3.0
    v.backward()
    assert x.grad.item() == 1.0
    a = to_tensor(np.array([1.0, 5.0]), device)
    b = to_tensor(np.array([4.0, 2.0]), device)
    np.testing.assert_array_equal(host(F.max(a, b)), [4.0, 5.0])
    np.testing.assert_array_equal(host(a.min(b)), [1.0, 2.0])


def test_max_min_bad_arguments_say_what_to_use():
    x = minidl.ones(2, 3)
    with pytest.raises(TypeError, match=r"max: 'dim' must be an int .* use amax\(input, "
                                        r"dim=\(0, 1\)\)"):
        x.max((0, 1))
    with pytest.raises(TypeError, match=r"min: keepdim=True needs an int 'dim'.*amin"):
        F.min(x, keepdim=True)
    with pytest.raises(TypeError, match="max: 'keepdim' cannot be used with a tensor"):
        F.max(x, minidl.zeros(3), True)
    with pytest.raises(IndexError, match="max: 'dim'=2 is out of range"):
        x.max(2)
    with pytest.raises(ValueError, match=r"max: the input \(shape \(0,\)\) is empty"):
        minidl.zeros(0).max()
    with pytest.raises(ValueError, match="amin: cannot reduce over an empty dimension 0"):
        minidl.zeros(0, 2).amin(0)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("unbiased", [True, False])
def test_var_std(device, rng, dim, unbiased):
    x = rng.standard_normal((2, 3, 4))
    ddof = 1 if unbiased else 0
    check_op(lambda t: F.var(t, dim, unbiased, False), [x], lambda a: a.var(dim, ddof=ddof),
             device)
    check_op(lambda t: t.std(dim, unbiased, True), [x],
             lambda a: a.std(dim, ddof=ddof, keepdims=True), device)


def test_amax_and_full_max_split_the_gradient_among_ties(device):
    x = to_tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), device, requires_grad=True)
    F.amax(x, 1).sum().backward()
    np.testing.assert_allclose(host(x.grad), [[0, 0.5, 0.5], [1, 0, 0]])
    x.grad = None
    x.max().backward()                                 # PyTorch's max(): evenly distributed
    np.testing.assert_allclose(host(x.grad), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    F.amin(x, (0, 1)).backward()
    np.testing.assert_allclose(host(x.grad), [[0, 0, 0], [0, 1, 0]])


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
    with pytest.raises(ValueError, match="amax: cannot reduce over an empty dimension"):
        F.amax(minidl.zeros(0, 3), 0)


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


# ---------------------------------------------------------------------------------------------
# logsumexp, prod, cumsum, norm, all/any

def _lse(a, dim, keepdim):
    """log(sum(exp)) the direct way, in float64 on values small enough not to overflow."""
    return np.log(np.exp(a).sum(dim, keepdims=keepdim))


@pytest.mark.parametrize("dim", [0, -1, (0, 2), None])
@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp(device, rng, dim, keepdim):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: F.logsumexp(t, dim, keepdim), [x], lambda a: _lse(a, dim, keepdim),
             device)


def test_logsumexp_is_stable_and_handles_infinities(device):
    x = to_tensor(np.array([[1000.0, 1000.0], [-1000.0, -1001.0]]), device)
    np.testing.assert_allclose(host(x.logsumexp(1)),
                               [1000 + np.log(2), -1000 + np.log1p(np.exp(-1.0))], rtol=1e-12)
    y = to_tensor(np.array([[-np.inf, -np.inf], [np.inf, 0.0]]), device)
    np.testing.assert_array_equal(host(minidl.logsumexp(y, 1)), [-np.inf, np.inf])
    h = to_tensor(np.full((3, 40000), 0.5, np.float16), device)      # 40000 exp's > 65504
    out = F.logsumexp(h, 1)
    assert out.dtype == np.float16
    np.testing.assert_allclose(host(out).astype(np.float64), 0.5 + np.log(40000), rtol=1e-3)
    with pytest.raises(TypeError, match="logsumexp: argument 'input' must be a Tensor"):
        F.logsumexp([1.0, 2.0], 0)
    with pytest.raises(IndexError, match="logsumexp: 'dim'=3 is out of range"):
        F.logsumexp(x, 3)


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_prod(device, rng, dim, keepdim):
    x = rng.uniform(0.5, 1.5, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))
    check_op(lambda t: F.prod(t, dim, keepdim), [x], lambda a: a.prod(dim, keepdims=keepdim),
             device)


def _prod_grad_loops(x, gy):
    """d/dx_i of sum_r gy_r prod_j x[r, j] by the definition: the product of the others."""
    g = np.zeros_like(x)
    for r in range(x.shape[0]):
        for i in range(x.shape[1]):
            g[r, i] = gy[r] * np.prod(np.delete(x[r], i))
    return g


def test_prod_gradient_with_zeros(device, rng):
    x = rng.uniform(0.5, 2.0, (4, 5))
    x[1, 2] = 0.0                                   # one zero
    x[2, 0] = x[2, 3] = 0.0                         # two zeros
    x[3, :] = 0.0                                   # all zeros
    gy = rng.standard_normal(4)
    t = to_tensor(x, device, requires_grad=True)
    y = t.prod(1)
    np.testing.assert_allclose(host(y), x.prod(1))
    y.backward(to_tensor(gy, device))
    np.testing.assert_allclose(host(t.grad), _prod_grad_loops(x, gy), rtol=1e-12)
    assert host(t.grad)[1, 2] != 0 and np.all(host(t.grad)[2:] == 0)
    assert minidl.gradcheck(lambda a: F.prod(a, 1), [t])    # the one-zero row is smooth
    assert F.prod(minidl.tensor([[1, 2], [3, 4]], dtype=minidl.int32)).dtype == np.int64


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(device, rng, dim):
    x = rng.standard_normal((3, 4, 2))
    check_op(lambda t: F.cumsum(t, dim), [x], lambda a: np.cumsum(a, dim), device)
    check_op(lambda t: t.cumsum(0), [np.array(2.5)], lambda a: a, device)


def test_cumsum_dtypes_and_errors():
    assert F.cumsum(minidl.tensor([True, True, False]), 0).tolist() == [1, 2, 2]
    assert F.cumsum(minidl.tensor([1, 2], dtype=minidl.int32), 0).dtype == np.int64
    with pytest.raises(IndexError, match="cumsum: 'dim'=2 is out of range"):
        minidl.ones(2, 3).cumsum(2)
    with pytest.raises(TypeError, match="cumsum: 'dim' must be an int"):
        minidl.ones(2, 3).cumsum(None)


def _norm_ref(a, p, dim, keepdim):
    axes = tuple(range(a.ndim)) if dim is None else dim
    b = np.abs(a)
    if p == np.inf:
        return b.max(axes, keepdims=keepdim)
    if p == -np.inf:
        return b.min(axes, keepdims=keepdim)
    return (b ** p).sum(axes, keepdims=keepdim) ** (1.0 / p)


@pytest.mark.parametrize("p", [2, 1, np.inf, -np.inf, 3, "fro"])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
def test_norm(device, rng, p, dim):
    x = _distinct(rng, (2, 3, 4)) - 11.8             # distinct |x|: a unique inf-norm element
    pr = 2 if p == "fro" else p
    check_op(lambda t: F.norm(t, p, dim), [x], lambda a: _norm_ref(a, pr, dim, False), device)
    check_op(lambda t: t.norm(p, dim, True), [x], lambda a: _norm_ref(a, pr, dim, True), device)


def test_norm_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4))
    for p, dim in [("fro", None), (2, 1), (1, 0), (np.inf, 1), (-np.inf, None), (3, 1), (0, 1)]:
        ours = F.norm(minidl.tensor(x), p, dim)
        ref = torch.norm(torch.tensor(x), p=p, dim=dim)
        np.testing.assert_allclose(host(ours), ref.numpy(), rtol=1e-12)


def test_norm_gradient_at_zero_and_ties_as_pytorch(device):
    x = to_tensor(np.zeros((2, 3)), device, requires_grad=True)
    F.norm(x).backward()
    assert np.all(host(x.grad) == 0)                 # PyTorch's subgradient, not NaN
    x.grad = None
    F.norm(x, 3, 1).sum().backward()
    assert np.all(host(x.grad) == 0)
    y = to_tensor(np.array([3.0, -3.0, 1.0]), device, requires_grad=True)
    F.norm(y, np.inf).backward()                     # ties share, with the sign
    np.testing.assert_array_equal(host(y.grad), [0.5, -0.5, 0.0])
    z = to_tensor(np.array([2.0, 0.0, -1.0]), device, requires_grad=True)
    F.norm(z, 1).backward()
    np.testing.assert_array_equal(host(z.grad), [1.0, 0.0, -1.0])


def test_norm_bad_arguments():
    x = minidl.ones(2, 3, 4)
    with pytest.raises(ValueError, match="norm: p='nuc' is not supported"):
        F.norm(x, "nuc")
    with pytest.raises(ValueError, match="norm: p='fro' takes at most 2 dims"):
        F.norm(x, "fro", (0, 1, 2))
    with pytest.raises(ValueError, match="norm: 'p' must be 'fro', inf, -inf or a number >= 0"):
        F.norm(x, -1)
    with pytest.raises(TypeError, match="norm: argument 'input' must be a floating"):
        F.norm(minidl.tensor([1, 2]))


@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_all_any(device, dim, keepdim):
    a = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 5.0]])
    t = to_tensor(a, device, requires_grad=True)
    for name in ("all", "any"):
        out = getattr(t, name)(dim, keepdim)
        assert out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(host(out), getattr(a != 0, name)(dim, keepdims=keepdim))
    assert minidl.all(to_tensor(np.array([True, True]), device)).item() is True
    assert minidl.any(to_tensor(np.zeros(0), device)).item() is False


# ---------------------------------------------------------------------------------------------
# sort, argsort, topk

def _sort_ref(a, dim, descending):
    """Stable sort by explicit loops over every 1-D slice along dim (ties in original order)."""
    a_m = np.moveaxis(a, dim, -1)
    idx = np.zeros(a_m.shape, np.int64)
    for pos in np.ndindex(a_m.shape[:-1]):
        row = list(a_m[pos])
        key = (lambda j: -row[j]) if descending else (lambda j: row[j])
        idx[pos] = sorted(range(len(row)), key=key)
    idx = np.moveaxis(idx, -1, dim)
    return np.take_along_axis(a, idx, dim), idx


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort(device, rng, dim, descending):
    x = _distinct(rng, (3, 4, 2))
    check_op(lambda t: F.sort(t, dim, descending), [x],
             lambda a: _sort_ref(a, dim, descending), device)
    i = minidl.argsort(to_tensor(x, device), dim, descending)
    assert i.dtype == np.int64
    np.testing.assert_array_equal(host(i), _sort_ref(x, dim, descending)[1])


@pytest.mark.parametrize("k", [0, 1, 3, 4])
@pytest.mark.parametrize("largest", [True, False])
def test_topk(device, rng, k, largest):
    x = _distinct(rng, (3, 4))

    def ref(a, dim):
        v, i = _sort_ref(a, dim, largest)
        return np.take(v, range(k), dim), np.take(i, range(k), dim)

    check_op(lambda t: F.topk(t, k, largest=largest), [x], lambda a: ref(a, -1), device)
    check_op(lambda t: t.topk(k, 0, largest), [x.T], lambda a: ref(a, 0), device)


def test_sort_ties_are_stable_and_nan_is_largest(device):
    x = to_tensor(np.array([2.0, np.nan, 1.0, 2.0, 1.0]), device)
    v, i = x.sort()
    np.testing.assert_array_equal(host(i), [2, 4, 0, 3, 1])
    v, i = x.sort(descending=True)
    np.testing.assert_array_equal(host(i), [1, 0, 3, 2, 4])
    assert np.isnan(host(v)[0])
    assert host(F.topk(x, 2).indices).tolist() == [1, 0]
    b = to_tensor(np.array([True, False, True]), device)
    assert host(b.argsort(descending=True)).tolist() == [0, 2, 1]


def test_sort_topk_gradient_goes_back_to_the_positions(device):
    x = to_tensor(np.array([[3.0, 1.0, 2.0]]), device, requires_grad=True)
    v, _ = x.topk(2)
    (v * to_tensor(np.array([[10.0, 20.0]]), device)).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [[10.0, 0.0, 20.0]])
    y = to_tensor(np.array(4.0), device, requires_grad=True)
    v, i = y.sort()
    assert v.shape == () and i.item() == 0
    v.backward()
    assert y.grad.item() == 1.0


def test_sort_topk_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5))
    xt = torch.tensor(x)
    for dim in (0, 1):
        v, i = F.sort(minidl.tensor(x), dim, True)
        tv, ti = torch.sort(xt, dim, True)
        np.testing.assert_array_equal(host(v), tv.numpy())
        np.testing.assert_array_equal(host(i), ti.numpy())
        v, i = F.topk(minidl.tensor(x), 2, dim, largest=False)
        tv, ti = torch.topk(xt, 2, dim, largest=False)
        np.testing.assert_array_equal(host(v), tv.numpy())
        np.testing.assert_array_equal(host(i), ti.numpy())


def test_sort_topk_bad_arguments():
    x = minidl.ones(2, 3)
    with pytest.raises(ValueError, match=r"topk: 'k' must be in 0..3 \(the size of dim -1"):
        x.topk(4)
    with pytest.raises(ValueError, match="topk: 'k' must be in 0..2"):
        x.topk(-1, 0)
    with pytest.raises(TypeError, match="topk: 'k' must be an int, got float"):
        x.topk(1.0)
    with pytest.raises(IndexError, match="sort: 'dim'=2 is out of range"):
        x.sort(2)
    with pytest.raises(TypeError, match="argsort: 'descending' must be a bool, got str"):
        x.argsort(0, "yes")
    with pytest.raises(TypeError, match="sort: argument 'input' must be a Tensor"):
        F.sort([3, 1])


def test_new_reductions_match_torch_values_and_gradients(rng):
    """Forward and gradient against PyTorch, on inputs with ties and zeros (where the
    gradient conventions differ between libraries)."""
    torch = pytest.importorskip("torch")
    x = rng.integers(-2, 3, (3, 4)).astype(np.float64)          # many ties and zeros
    x[0] = [1.0, 0.0, 0.0, 2.0]                                  # two zeros in a row
    gy_full = rng.standard_normal((3, 4))
    cases = [
        lambda t, m: m.amax(t, 1), lambda t, m: m.amin(t, (0, 1)), lambda t, m: t.max(),
        lambda t, m: t.min(1)[0], lambda t, m: t.max(0, keepdim=True)[0],
        lambda t, m: m.logsumexp(t, 1), lambda t, m: t.logsumexp((0, 1), True),
        lambda t, m: m.prod(t, 1), lambda t, m: t.prod(0), lambda t, m: m.prod(t),
        lambda t, m: m.cumsum(t, 1), lambda t, m: m.norm(t, 2, 1), lambda t, m: t.norm(1),
        lambda t, m: m.sort(t, 1, True)[0], lambda t, m: m.topk(t, 2, 0)[0],
    ]
    for k, f in enumerate(cases):
        ours_in = minidl.tensor(x, requires_grad=True)
        ref_in = torch.tensor(x, requires_grad=True)
        ours, ref = f(ours_in, minidl), f(ref_in, torch)
        np.testing.assert_allclose(host(ours), ref.detach().numpy(), rtol=1e-12, err_msg=k)
        gy = gy_full.reshape(-1)[:ours.numel()].reshape(ours.shape)
        ours.backward(minidl.tensor(gy))
        ref.backward(torch.tensor(gy))
        if k in (13, 14):        # sort/topk of ties: PyTorch's tie order is not specified
            np.testing.assert_allclose(host(ours_in.grad).sum(), ref_in.grad.numpy().sum())
            continue
        np.testing.assert_allclose(host(ours_in.grad), ref_in.grad.numpy(), rtol=1e-12,
                                   atol=1e-15, err_msg=k)
    assert minidl.max(minidl.tensor(x), 1).indices.tolist() == torch.tensor(x).max(1)[1].tolist()


# --- findings of the review of the PyTorch-parity reductions ---------------------------------

def test_norm_below_one_has_a_zero_gradient_at_zero(device):
    """d/dx ||x||_p at x_i = 0 for p < 1: |x_i|^(p-1) is infinite but sign(x_i) is 0; PyTorch
    (and the limit along the other coordinates) gives 0 there, not 0 * inf = nan."""
    x = to_tensor(np.array([0.0, 1.0, 2.0]), device, requires_grad=True)
    x.norm(0.5).backward()
    y = 1.0 + np.sqrt(2.0)                                   # (sqrt(1) + sqrt(2))^2 ^ ...
    n = y ** 2
    want = [0.0, n ** 0.5 * 1.0 ** -0.5, n ** 0.5 * 2.0 ** -0.5]   # y^(1-p) |x|^(p-1)
    np.testing.assert_allclose(host(x.grad), want, rtol=1e-12)


@pytest.mark.parametrize("p,want", [(2, 500.0), (3, (300.0 ** 3 + 400.0 ** 3) ** (1 / 3))])
def test_float16_norm_sums_in_float32(device, p, want):
    y = to_tensor(np.array([300.0, 400.0], np.float16), device).norm(p)
    assert y.dtype == np.float16 and host(y).item() == pytest.approx(want, rel=1e-3)


def test_full_max_of_a_nan_sends_the_gradient_to_the_nan(device):
    x = to_tensor(np.array([1.0, np.nan, 3.0]), device, requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 1.0, 0.0])
    a = to_tensor(np.array([1.0, np.nan, 3.0]), device, requires_grad=True)
    a.amax().backward()                                          # amax: NaNs, as PyTorch
    assert np.isnan(host(a.grad)).all()


@pytest.mark.parametrize("op", ["sum", "prod", "cumsum"])
def test_unsigned_and_bool_sums_are_int64(device, op):
    for dtype in (np.uint8, np.bool_, np.int32):
        x = to_tensor(np.array([1, 1, 0], dtype), device)
        y = getattr(x, op)(0) if op == "cumsum" else getattr(x, op)()
        assert y.dtype == np.int64, (op, dtype, y.dtype)


def test_argmax_of_a_0d_tensor_with_keepdim_stays_0d():
    assert minidl.tensor(3.0).argmax(0, keepdim=True).shape == ()
    assert minidl.tensor(3.0).argmin(keepdim=True).shape == ()


@pytest.mark.parametrize("call", [lambda x: x.sum(1, None), lambda x: x.prod(1, keepdim="a"),
                                  lambda x: x.max(1, keepdim="yes"), lambda x: x.amax(0, 1),
                                  lambda x: x.argmax(0, keepdim=None),
                                  lambda x: x.all(0, keepdim=2)])
def test_keepdim_must_be_a_bool(call):
    with pytest.raises(TypeError, match=r"\w+: 'keepdim' must be a bool, got"):
        call(minidl.randn(2, 3))


def test_logsumexp_of_an_empty_dim_is_minus_inf_and_ints_give_float32(device):
    x = to_tensor(np.zeros((0, 3)), device, requires_grad=True)
    y = F.logsumexp(x, 0)
    assert host(y).tolist() == [-np.inf] * 3
    y.sum().backward()
    assert x.grad.shape == (0, 3)
    z = F.logsumexp(to_tensor(np.array([1, 2, 3]), device), 0)
    assert z.dtype == np.float32
    assert host(z).item() == pytest.approx(np.log(np.exp([1.0, 2.0, 3.0]).sum()), rel=1e-6)


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std_take_pytorch_2_correction(device, rng, correction):
    x = rng.standard_normal((3, 5))
    n = 5
    ref_var = ((x - x.mean(1, keepdims=True)) ** 2).sum(1) / (n - correction)
    check_op(lambda t: t.var(1, correction=correction), [x], lambda a: ref_var, device)
    check_op(lambda t: F.std(t, 1, correction=correction), [x], lambda a: np.sqrt(ref_var),
             device)
    with pytest.raises(TypeError, match="var: give either 'unbiased' or 'correction'"):
        F.var(to_tensor(x, device), 1, True, correction=0)
    with pytest.raises(ValueError, match="std: 'correction' must be a non-negative number, "
                                         "got -1.0"):
        F.std(to_tensor(x, device), 1, correction=-1)


def test_var_and_std_with_correction_at_or_past_n_are_inf_or_nan_as_pytorch():
    """PyTorch divides by max(0, n - correction): inf for a slice that varies, NaN for a
    constant one; the gradient is the same formula's (+-inf, NaN where x is the mean)."""
    x = minidl.tensor([1.0, 2.0], dtype=minidl.float64, requires_grad=True)
    for c in (2, 3):
        y = minidl.var(x, correction=c)
        assert y.item() == np.inf
        y.backward()
        np.testing.assert_array_equal(x.grad.numpy(), [-np.inf, np.inf])
        x.grad = None
    assert minidl.std(x, correction=2).item() == np.inf
    assert np.isnan(minidl.var(minidl.tensor([1.0, 1.0]), correction=2).item())
    np.testing.assert_allclose(minidl.var(x, correction=1.5).item(), 1.0)


def test_prod_gradient_at_an_infinite_entry_beside_a_zero_is_zero():
    """The product of the others at the inf is 0 * 3 = 0, not 0 * inf."""
    x = minidl.tensor([np.inf, 0.0, 3.0], dtype=minidl.float64, requires_grad=True)
    with np.errstate(invalid="ignore"):          # the forward's inf * 0 (NumPy warns)
        y = minidl.prod(x)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, np.inf, 0.0])


def test_reductions_take_pytorchs_dtype_and_squeeze_takes_several_dims():
    """sum/mean/prod/cumsum(dtype=...) cast the input first (a float16 sum of 4 x 60000
    overflows in float16, not in float32); squeeze takes a tuple of dims (PyTorch 2)."""
    x = minidl.tensor(np.full(4, 60000, np.float16), requires_grad=True)
    y = x.sum(dtype=minidl.float32)
    assert y.dtype == minidl.float32 and y.item() == 240000.0
    y.backward()
    assert x.grad.dtype == minidl.float16 and x.grad.tolist() == [1.0] * 4
    assert minidl.mean(minidl.tensor([1, 2, 3]), dtype=minidl.float64).item() == 2.0
    assert minidl.tensor([1, 2, 3]).cumsum(0, dtype=minidl.float32).tolist() == [1, 3, 6]
    assert minidl.tensor([2.0, 3.0]).prod(dtype=minidl.float64).dtype == minidl.float64
    with pytest.raises(TypeError, match="sum: dtype must be"):
        x.sum(dtype="U2")
    z = minidl.zeros(1, 3, 1, 2, 1)
    assert z.squeeze((0, -1)).shape == (3, 1, 2) and z.squeeze([2]).shape == (1, 3, 2, 1)
    assert z.squeeze((1, 2)).shape == (1, 3, 2, 1)        # a listed size-3 axis stays
