"""PyTorch-parity shape ops: flip, roll, repeat/tile, unbind, movedim, narrow, masked_fill,
gather, one_hot, tril/triu. Forward against loops / index arithmetic written here (and torch
where installed), float64 gradchecks with random upstream gradients, dtype kept, bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import backend
from tests.helpers import check_op, host, to_tensor


def _take(a, idx, axis):
    return np.take(a, np.asarray(idx, dtype=np.int64), axis=axis)


# ---------------------------------------------------------------------------------------------
# flip, roll

@pytest.mark.parametrize("dims", [(0,), (1, 2), (-1,), (0, 1, 2), (), 2])
def test_flip(device, rng, dims):
    x = rng.standard_normal((2, 3, 4))
    axes = [d % 3 for d in ((dims,) if isinstance(dims, int) else dims)]

    def ref(a):
        for d in axes:
            n = a.shape[d]
            a = _take(a, [n - 1 - j for j in range(n)], d)
        return a
    check_op(lambda t: F.flip(t, dims), [x], ref, device)


@pytest.mark.parametrize("shifts,dims", [(1, None), (-7, None), ((2,), (1,)), (1, 0),
                                         ((1, -3), (0, 2)), ((5, 1), (-1, -1))])
def test_roll(device, rng, shifts, dims):
    x = rng.standard_normal((2, 3, 4))

    def ref(a):
        if dims is None:                     # y[(j + s) mod n] = x[j] on the flat tensor
            flat = a.reshape(-1)
            n = flat.size
            return _take(flat, [(j - shifts) % n for j in range(n)], 0).reshape(a.shape)
        for s, d in zip(np.atleast_1d(shifts), np.atleast_1d(dims)):
            n = a.shape[d]
            a = _take(a, [(j - s) % n for j in range(n)], d)
        return a
    check_op(lambda t: F.roll(t, shifts, dims), [x], ref, device)


def test_roll_0d_and_flip_0d(device):
    check_op(lambda t: F.roll(t, 3), [np.array(1.5)], lambda a: a, device)
    check_op(lambda t: F.flip(t, (0,)), [np.array(1.5)], lambda a: a, device)


# ---------------------------------------------------------------------------------------------
# repeat, tile

def _tile_ref(a, reps):
    a = a.reshape((1,) * (len(reps) - a.ndim) + a.shape)
    idx = [np.arange(r * n) % n for r, n in zip(reps, a.shape)]
    return a[np.ix_(*idx)] if a.ndim else a


@pytest.mark.parametrize("shape,sizes", [((3,), (2,)), ((2, 3), (2, 1)), ((2, 3), (3, 1, 2)),
                                         ((2, 1, 3), (1, 4, 1)), ((2, 3), (0, 2)), ((), (2, 3))])
def test_repeat(device, rng, shape, sizes):
    x = rng.standard_normal(shape)
    check_op(lambda t: F.repeat(t, *sizes), [x], lambda a: _tile_ref(a, sizes), device)
    check_op(lambda t: F.repeat(t, sizes), [x], lambda a: _tile_ref(a, sizes), device)


@pytest.mark.parametrize("shape,dims", [((2, 3), (2,)), ((2, 3), ()), ((2, 3), (2, 1, 3)),
                                        ((4,), (3,))])
def test_tile(device, rng, shape, dims):
    x = rng.standard_normal(shape)
    full = (1,) * (len(shape) - len(dims)) + dims
    check_op(lambda t: F.tile(t, dims), [x], lambda a: _tile_ref(a, full), device)


def test_repeat_tile_errors():
    x = minidl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"repeat: 'sizes' needs at least one entry per dim"):
        F.repeat(x, 2)
    with pytest.raises(ValueError, match=r"repeat: 'sizes' must be non-negative, got \(2, -1\)"):
        F.repeat(x, 2, -1)
    with pytest.raises(TypeError, match=r"repeat: 'sizes' must be a tuple of ints"):
        F.repeat(x, 2, 1.5)
    with pytest.raises(ValueError, match=r"tile: 'dims' must be non-negative"):
        F.tile(x, (-2,))


# ---------------------------------------------------------------------------------------------
# unbind, movedim, narrow

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unbind(device, rng, dim):
    x = rng.standard_normal((2, 3, 4))
    n = x.shape[dim]
    check_op(lambda t: F.unbind(t, dim), [x],
             lambda a: tuple(np.take(a, k, axis=dim) for k in range(n)), device)


def test_unbind_partly_used_and_edge_cases(device, rng):
    x = to_tensor(rng.standard_normal((3, 2)), device, requires_grad=True)
    a, b, c = F.unbind(x)
    (b * 2.0).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [[0, 0], [2, 2], [0, 0]])
    assert F.unbind(to_tensor(np.zeros((0, 2)), device)) == ()
    with pytest.raises(IndexError, match="unbind: a 0-d tensor"):
        F.unbind(to_tensor(np.array(1.0), device))


@pytest.mark.parametrize("src,dst", [(0, 2), (-1, 0), ((0, 1), (2, 0)), ((2, 0), (0, 1)),
                                     ((), ()), ((0, 1, 2), (2, 1, 0))])
def test_movedim(device, rng, src, dst):
    x = rng.standard_normal((2, 3, 4))

    def ref(a):                              # axis src[i] ends at dst[i]; the rest keep order
        s = [d % 3 for d in np.atleast_1d(src)]
        t = [d % 3 for d in np.atleast_1d(dst)]
        perm = [None] * 3
        for i, j in zip(s, t):
            perm[j] = i
        rest = iter(d for d in range(3) if d not in s)
        return a.transpose([p if p is not None else next(rest) for p in perm])
    check_op(lambda t: F.movedim(t, src, dst), [x], ref, device)
    assert F.moveaxis is F.movedim


def test_movedim_errors():
    x = minidl.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="movedim: 'source' .* must have the same number"):
        F.movedim(x, (0, 1), (2,))
    with pytest.raises(ValueError, match="movedim: 'destination' has repeated dimensions"):
        F.movedim(x, (0, 1), (1, 1))
    with pytest.raises(IndexError, match="movedim: 'source'=3 is out of range"):
        F.movedim(x, 3, 0)


@pytest.mark.parametrize("dim,start,length", [(0, 1, 2), (1, -3, 2), (-1, 0, 4), (1, 4, 0),
                                              (1, -4, 0)])
def test_narrow(device, rng, dim, start, length):
    x = rng.standard_normal((3, 4))
    n = x.shape[dim]
    s = start % n if start < 0 else start
    check_op(lambda t: F.narrow(t, dim, start, length), [x],
             lambda a: _take(a, list(range(s, s + length)), dim), device)


def test_narrow_errors():
    x = minidl.zeros(3, 4)
    with pytest.raises(IndexError, match=r"narrow: 'start'=5 is out of range for dim 1 of "
                                         r"size 4 \(expected -4..4\)"):
        F.narrow(x, 1, 5, 0)
    with pytest.raises(ValueError, match=r"narrow: 'length'=3 must be non-negative and start "
                                         r"\(2\) \+ length must not exceed"):
        F.narrow(x, 1, 2, 3)
    with pytest.raises(ValueError, match="narrow: 'length'=-1"):
        F.narrow(x, 1, 0, -1)
    with pytest.raises(TypeError, match="narrow: 'start' must be an int, got float"):
        F.narrow(x, 1, 1.0, 1)
    with pytest.raises(ValueError, match="narrow: cannot be applied to a 0-d tensor"):
        F.narrow(minidl.tensor(1.0), 0, 0, 1)


# ---------------------------------------------------------------------------------------------
# masked_fill

@pytest.mark.parametrize("xs,ms", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (2, 1, 4)),
                                   ((), (2,))])
def test_masked_fill(device, rng, xs, ms):
    x = rng.standard_normal(xs)
    mask = rng.random(ms) < 0.5
    m = to_tensor(mask, device)

    def at(arr, i):                          # arr's entry under broadcast position i
        return arr[tuple(0 if n == 1 else j for j, n in zip(i[len(i) - arr.ndim:], arr.shape))]

    def ref(a, v=-2.5):
        shape = np.broadcast_shapes(a.shape, mask.shape)
        out = np.empty(shape)
        for i in np.ndindex(*shape):
            out[i] = v if at(mask, i) else at(a, i)
        return out
    check_op(lambda t: F.masked_fill(t, m, -2.5), [x], ref, device)
    # the value as a tensor gets a gradient too (passed as shape (1,): gradcheck makes 0-d
    # inputs 1-d, see test_shape_extra.test_0d_inputs)
    check_op(lambda t, v: F.masked_fill(t, m, v.reshape(())), [x, np.array([0.75])],
             lambda a, v: ref(a, float(v[0])), device)


def test_masked_fill_gradient_is_zero_where_filled(device, rng):
    x = to_tensor(rng.standard_normal((3, 4)), device, requires_grad=True)
    mask = rng.random((3, 4)) < 0.5
    y = F.masked_fill(x, to_tensor(mask, device), float("-inf"))
    assert np.isneginf(host(y)[mask]).all()
    g = rng.standard_normal((3, 4))
    y.backward(to_tensor(g, device))
    np.testing.assert_array_equal(host(x.grad), np.where(mask, 0.0, g))


def test_masked_fill_dtypes(device):
    x32 = to_tensor(np.ones((2, 2), np.float32), device)
    m = to_tensor(np.array([[True, False], [False, True]]), device)
    assert F.masked_fill(x32, m, 1e-3).dtype == np.float32
    v64 = to_tensor(np.array(3.0), device)
    assert F.masked_fill(x32, m, v64).dtype == np.float32
    xi = to_tensor(np.arange(4).reshape(2, 2), device)
    y = F.masked_fill(xi, m, -1)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(host(y), [[-1, 1], [2, -1]])


def test_masked_fill_errors():
    x = minidl.zeros(2, 3)
    with pytest.raises(TypeError, match="masked_fill: 'mask' must be a boolean Tensor, got "
                                        r"Tensor\(shape=\(2, 3\), dtype=float32\)"):
        F.masked_fill(x, minidl.ones(2, 3), 1.0)
    with pytest.raises(ValueError, match=r"masked_fill: 'mask' of shape \(2,\) cannot be "
                                         r"broadcast with 'input' of shape \(2, 3\)"):
        F.masked_fill(x, minidl.tensor([True, False]), 1.0)
    mask = minidl.zeros(2, 3) > 0
    with pytest.raises(ValueError, match="masked_fill: a tensor 'value' must be 0-d"):
        F.masked_fill(x, mask, minidl.tensor([1.0]))
    with pytest.raises(TypeError, match="masked_fill: 'value' 1.5 is a float but 'input' has "
                                        "dtype int64"):
        F.masked_fill(minidl.tensor([[1, 2, 3]] * 2), mask, 1.5)
    with pytest.raises(ValueError, match="masked_fill: 'value' 300 does not fit"):
        F.masked_fill(minidl.zeros(2, 3, dtype=minidl.uint8), mask, 300)
    with pytest.raises(TypeError, match="masked_fill: 'value' must be a number"):
        F.masked_fill(x, mask, "a")


# ---------------------------------------------------------------------------------------------
# gather

def _gather_ref(a, dim, idx):
    out = np.empty(idx.shape)
    for i in np.ndindex(*idx.shape):
        src = list(i)
        src[dim] = idx[i]
        out[i] = a[tuple(src)]
    return out


@pytest.mark.parametrize("xs,dim,ishape", [((4, 3), 0, (6, 3)), ((4, 3), 1, (4, 5)),
                                           ((4, 3), -1, (2, 2)), ((2, 3, 4), 1, (2, 4, 3)),
                                           ((2, 3, 4), 2, (1, 2, 7)), ((5,), 0, (9,)),
                                           ((4, 3), 1, (4, 0))])
def test_gather(device, rng, xs, dim, ishape):
    x = rng.standard_normal(xs)
    idx = rng.integers(0, xs[dim], ishape)            # repeats along dim: adds in backward
    index = to_tensor(idx, device)
    check_op(lambda t: F.gather(t, dim, index), [x], lambda a: _gather_ref(a, dim, idx),
             device)


def test_gather_gradient_adds_repeats_deterministically(device, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([[1, 1, 1, 1, 3, 1], [0, 0, 2, 0, 0, 0], [3, 3, 3, 3, 3, 3]])
    g = rng.standard_normal(idx.shape).astype(np.float32)
    expected = np.zeros((3, 4))
    for i, j in np.ndindex(*idx.shape):
        expected[i, idx[i, j]] += g[i, j]
    grads = []
    for _ in range(2):
        t = to_tensor(x, device, requires_grad=True)
        F.gather(t, 1, to_tensor(idx, device)).backward(to_tensor(g, device))
        assert t.grad.dtype == np.float32
        grads.append(host(t.grad))
    np.testing.assert_allclose(grads[0], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(grads[0], grads[1])


def test_0d_inputs(device):
    # (check_op's gradcheck would turn a 0-d input into shape (1,): minidl.gradcheck makes
    # inputs contiguous with ascontiguousarray, which gives 0-d arrays a dimension)
    cases = [lambda t: F.gather(t, 0, to_tensor(np.array(0), device)),
             lambda t: F.repeat(t), lambda t: F.tile(t, ()), lambda t: F.roll(t, 2),
             lambda t: F.flip(t, 0), lambda t: F.movedim(t, 0, 0)]
    for fn in cases:
        x = to_tensor(np.array(2.5), device, requires_grad=True)
        y = fn(x)
        assert y.shape == () and host(y) == 2.5
        y.backward(to_tensor(np.array(-1.5), device))
        assert x.grad.shape == () and host(x.grad) == -1.5


def test_gather_errors():
    x = minidl.zeros(2, 3)
    with pytest.raises(IndexError, match=r"gather: index 5 is out of range for dim 1 of size "
                                         r"3 \(expected 0..2\)"):
        F.gather(x, 1, minidl.tensor([[0], [5]]))
    with pytest.raises(IndexError, match="gather: index -1 is out of range"):
        F.gather(x, 1, minidl.tensor([[-1], [0]]))
    with pytest.raises(TypeError, match="gather: 'index' must be an integer tensor, got dtype "
                                        "float32"):
        F.gather(x, 1, minidl.zeros(2, 1))
    with pytest.raises(ValueError, match=r"gather: 'index' must have as many dims as 'input' "
                                         r"\(2\), got shape \(2,\)"):
        F.gather(x, 1, minidl.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"gather: 'index' of shape \(3, 2\) must be no "
                                         r"larger than 'input' \(2, 3\) outside dim 1"):
        F.gather(x, 1, minidl.zeros(3, 2, dtype=minidl.int64))
    with pytest.raises(ValueError, match="gather: sparse_grad=True is not supported"):
        F.gather(x, 1, minidl.zeros(2, 1, dtype=minidl.int64), sparse_grad=True)
    with pytest.raises(IndexError, match="gather: 'dim'=2 is out of range"):
        F.gather(x, 2, minidl.zeros(2, 1, dtype=minidl.int64))


@pytest.mark.cuda
def test_gather_bad_index_on_gpu_raises_at_the_next_sync():
    x = minidl.zeros(2, 3, device="cuda")
    y = F.gather(x, 1, minidl.tensor([[0], [7]], device="cuda"))     # no wait here
    assert y.shape == (2, 1)
    with pytest.raises(IndexError, match="gather: index 7 is out of range"):
        minidl.synchronize("cuda")


# ---------------------------------------------------------------------------------------------
# one_hot

@pytest.mark.parametrize("shape,num_classes", [((5,), 4), ((2, 3), -1), ((), 3), ((0,), 2)])
def test_one_hot(device, rng, shape, num_classes):
    labels = rng.integers(0, 4 if num_classes == -1 else num_classes, shape)
    C = int(labels.max()) + 1 if num_classes == -1 else num_classes
    out = F.one_hot(to_tensor(labels, device), num_classes)
    assert out.dtype == np.int64 and out.shape == shape + (C,) and out.device == device
    ref = np.zeros(shape + (C,), np.int64)
    for i in np.ndindex(*shape):
        ref[i + (labels[i],)] = 1
    np.testing.assert_array_equal(host(out), ref)


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"one_hot: class values must be smaller than "
                                         r"num_classes \(2\), got 2"):
        F.one_hot(minidl.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="one_hot: class values must be non-negative, got -2"):
        F.one_hot(minidl.tensor([0, -2]), 3)
    with pytest.raises(ValueError, match="one_hot: class values must be non-negative, got -1"):
        F.one_hot(minidl.tensor([0, -1]))
    with pytest.raises(ValueError, match="one_hot: cannot infer num_classes from an empty"):
        F.one_hot(minidl.zeros(0, dtype=minidl.int64))
    with pytest.raises(TypeError, match="one_hot: 'tensor' must hold integer class labels, "
                                        "got dtype float32"):
        F.one_hot(minidl.zeros(3), 3)
    with pytest.raises(ValueError, match="one_hot: 'num_classes' must be -1 .* got -2"):
        F.one_hot(minidl.tensor([0]), -2)


@pytest.mark.cuda
def test_one_hot_bad_label_on_gpu_raises_at_the_next_sync():
    out = F.one_hot(minidl.tensor([1, 5], device="cuda"), 3)           # no wait here
    assert out.shape == (2, 3)
    with pytest.raises(ValueError, match=r"one_hot: class values must be smaller than "
                                         r"num_classes \(3\), got 5"):
        minidl.synchronize("cuda")


# ---------------------------------------------------------------------------------------------
# tril, triu

@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 3), (1, 1)])
@pytest.mark.parametrize("diagonal", [0, 1, -1, 5, -5])
def test_tril_triu(device, rng, shape, diagonal):
    x = rng.standard_normal(shape)

    def ref(a, lower):
        out = a.copy()
        for i in np.ndindex(*a.shape):
            r, c = i[-2:]
            if (c - r > diagonal) if lower else (c - r < diagonal):
                out[i] = 0.0
        return out
    check_op(lambda t: F.tril(t, diagonal), [x], lambda a: ref(a, True), device)
    check_op(lambda t: F.triu(t, diagonal), [x], lambda a: ref(a, False), device)


def test_tril_triu_errors_and_ints():
    with pytest.raises(ValueError, match=r"tril: 'input' must have at least 2 dimensions, got "
                                         r"shape \(3,\)"):
        F.tril(minidl.zeros(3))
    with pytest.raises(TypeError, match="triu: 'diagonal' must be an int, got float"):
        F.triu(minidl.zeros(3, 3), 1.0)
    y = F.triu(minidl.tensor([[1, 2], [3, 4]]))
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), [[1, 2], [0, 4]])


# ---------------------------------------------------------------------------------------------
# errors shared by several ops

def test_flip_roll_errors():
    x = minidl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"flip: 'dims' has repeated dimensions: \(0, -2\)"):
        F.flip(x, (0, -2))
    with pytest.raises(IndexError, match="flip: 'dims'=2 is out of range"):
        F.flip(x, (2,))
    with pytest.raises(ValueError, match=r"roll: without 'dims' .* 'shifts' must be one int, "
                                         r"got \(1, 2\)"):
        F.roll(x, (1, 2))
    with pytest.raises(ValueError, match=r"roll: 'shifts' and 'dims' must have the same "
                                         r"length, got shifts=\(1,\) and dims=\(0, 1\)"):
        F.roll(x, 1, (0, 1))
    with pytest.raises(TypeError, match="flip: argument 'input' must be a Tensor, got ndarray"):
        F.flip(np.zeros(3), 0)


# ---------------------------------------------------------------------------------------------
# PyTorch as an extra oracle: values and gradients

_TORCH_CASES = {
    "flip": (lambda m, x: m.flip(x, (0, 2)), None),
    "roll": (lambda m, x: m.roll(x, (1, -2), (2, 0)), None),
    "roll_flat": (lambda m, x: m.roll(x, 5), None),
    "repeat": (lambda m, x: m.repeat(x, (2, 1, 3, 1)) if m is F else x.repeat(2, 1, 3, 1),
               None),
    "tile": (lambda m, x: m.tile(x, (2, 2)), None),
    "unbind": (lambda m, x: m.unbind(x, 1), None),
    "movedim": (lambda m, x: m.movedim(x, (0, 2), (1, 0)), None),
    "narrow": (lambda m, x: m.narrow(x, 2, -3, 2), None),
    "tril": (lambda m, x: m.tril(x, -1), None),
    "triu": (lambda m, x: m.triu(x, 1), None),
}


@pytest.mark.parametrize("name", sorted(_TORCH_CASES))
def test_matches_torch(rng, name):
    torch = pytest.importorskip("torch")
    fn, _ = _TORCH_CASES[name]
    a = rng.standard_normal((2, 3, 4))
    x, tx = minidl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ys, tys = fn(F, x), fn(torch, tx)
    ys = ys if isinstance(ys, tuple) else (ys,)
    tys = tys if isinstance(tys, tuple) else (tys,)
    assert len(ys) == len(tys)
    total, ttotal = 0.0, 0.0
    for y, ty in zip(ys, tys):
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        g = rng.standard_normal(y.shape)
        total = total + (y * minidl.tensor(g)).sum()
        ttotal = ttotal + (ty * torch.tensor(g)).sum()
    total.backward()
    ttotal.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_indexing_ops_match_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((3, 5))
    idx = rng.integers(0, 5, (3, 7))
    mask = rng.random((1, 5)) < 0.5
    g1, g2 = rng.standard_normal((3, 7)), rng.standard_normal((3, 5))
    x, tx = minidl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    v, tv = minidl.tensor(np.array(0.3), requires_grad=True), torch.tensor(0.3,
                                                                          dtype=torch.float64,
                                                                          requires_grad=True)
    y1, ty1 = F.gather(x, 1, minidl.tensor(idx)), torch.gather(tx, 1, torch.tensor(idx))
    y2 = F.masked_fill(x, minidl.tensor(mask), v)
    ty2 = tx.masked_fill(torch.tensor(mask), tv)
    np.testing.assert_array_equal(y1.numpy(), ty1.detach().numpy())
    np.testing.assert_array_equal(y2.numpy(), ty2.detach().numpy())
    ((y1 * minidl.tensor(g1)).sum() + (y2 * minidl.tensor(g2)).sum()).backward()
    ((ty1 * torch.tensor(g1)).sum() + (ty2 * torch.tensor(g2)).sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v.grad.numpy(), tv.grad.numpy(), rtol=1e-12, atol=1e-12)
    labels = rng.integers(0, 6, (2, 3))
    np.testing.assert_array_equal(
        F.one_hot(minidl.tensor(labels)).numpy(),
        torch.nn.functional.one_hot(torch.tensor(labels)).numpy())


# ---------------------------------------------------------------------------------------------
# Tensor methods (bound in minidl/tensor.py; skipped until they are)

_METHODS = [("flip", ((0,),), {}), ("roll", (1, 0), {}), ("repeat", (2, 1), {}),
            ("tile", ((2,),), {}), ("unbind", (1,), {}), ("movedim", (0, 1), {}),
            ("narrow", (1, 0, 2), {}), ("tril", (), {"diagonal": 1}),
            ("triu", (-1,), {})]


@pytest.mark.parametrize("name,args,kwargs", _METHODS, ids=[m[0] for m in _METHODS])
def test_tensor_methods_call_functional(rng, name, args, kwargs):
    if not hasattr(minidl.Tensor, name):
        pytest.skip(f"Tensor.{name} is not bound yet")
    x = minidl.tensor(rng.standard_normal((2, 3)))
    ours = getattr(x, name)(*args, **kwargs)
    ref = getattr(F, name)(x, *args, **kwargs)
    for o, r in zip(*(v if isinstance(v, tuple) else (v,) for v in (ours, ref))):
        np.testing.assert_array_equal(o.numpy(), r.numpy())


def test_tensor_index_methods(rng):
    for name in ("masked_fill", "gather"):
        if not hasattr(minidl.Tensor, name):
            pytest.skip(f"Tensor.{name} is not bound yet")
    x = minidl.tensor(rng.standard_normal((2, 3)))
    mask = x > 0
    np.testing.assert_array_equal(x.masked_fill(mask, 0.0).numpy(),
                                  F.masked_fill(x, mask, 0.0).numpy())
    idx = minidl.tensor([[2, 0], [1, 1]])
    np.testing.assert_array_equal(x.gather(1, idx).numpy(), F.gather(x, 1, idx).numpy())


def test_views_share_versions_with_their_input(device, rng):
    """flip, unbind and narrow return views; an in-place change of the input afterwards must
    be caught by backward, as for reshape."""
    for make in (lambda t: F.flip(t, (0,)), lambda t: F.unbind(t)[0],
                 lambda t: F.narrow(t, 0, 0, 1)):
        x = to_tensor(rng.standard_normal((2, 2)), device, requires_grad=True)
        y = make(x * 1.0)
        base = y.grad_fn._inputs[0]
        z = (y * y).sum()
        with minidl.no_grad():
            base.fill_(0.0)
        with pytest.raises(RuntimeError):
            z.backward()


def test_all_ops_have_device_consistent_outputs(device, rng):
    x = to_tensor(rng.standard_normal((2, 3)), device)
    outs = [F.flip(x, 0), F.roll(x, 1), F.repeat(x, 2, 1), F.tile(x, (2,)), F.movedim(x, 0, 1),
            F.narrow(x, 1, 0, 2), F.masked_fill(x, x > 0, 1.0), F.tril(x), F.triu(x),
            F.gather(x, 0, to_tensor(np.zeros((1, 3), np.int64), device)),
            F.one_hot(to_tensor(np.array([1, 0]), device), 3)] + list(F.unbind(x))
    for y in outs:
        assert y.device == device
        assert backend.device_of(y.data) == device


@pytest.mark.parametrize("fn", ["cat", "stack"])
def test_cat_and_stack_promote_as_pytorch(fn):
    """PyTorch's promotion, not NumPy's: a float with an integer keeps the float's width."""
    cases = [("float32", "int64", "float32"), ("int32", "float16", "float16"),
             ("uint8", "int8", "int16"), ("bool", "int32", "int32"),
             ("float32", "float64", "float64"), ("bool", "bool", "bool")]
    for a, b, want in cases:
        x = minidl.tensor(np.ones(2, a), requires_grad=a.startswith("float"))
        y = getattr(minidl, fn)([x, minidl.tensor(np.ones(2, b))])
        assert y.dtype == np.dtype(want), (fn, a, b, y.dtype)
        if x.requires_grad:
            y.backward(minidl.ones(*y.shape, dtype=y.dtype))
            assert x.grad.dtype == x.dtype
            np.testing.assert_array_equal(x.grad.numpy(), 1.0)


def test_chunk_of_an_empty_dim_gives_chunks_empty_pieces():
    pieces = minidl.chunk(minidl.zeros(0, 4), 3)
    assert [p.shape for p in pieces] == [(0, 4)] * 3
    assert [p.shape for p in minidl.zeros(5).chunk(3)] == [(2,), (2,), (1,)]
    assert [p.shape for p in minidl.zeros(2).chunk(3)] == [(1,), (1,)]
