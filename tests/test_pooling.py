"""max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d, global_avg_pool2d and
their modules: forward, indices and gradient vs loop oracles, float64 gradchecks, deterministic
ties, NaN, dtype, torch parity (dilation, ceil_mode, divisors, indices), bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests import reference as R
from tests.helpers import check_op, host, to_tensor

WINDOWS = [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (2, 1, 1), (3, 3, 0)]


@pytest.mark.parametrize("k,s,p", WINDOWS)
def test_max_pool_matches_loops_and_gradchecks(device, rng, k, s, p):
    x = rng.standard_normal((2, 3, 7, 6))
    check_op(lambda t: F.max_pool2d(t, k, s, p), [x], lambda a: R.max_pool2d(a, k, s, p), device)


@pytest.mark.parametrize("k,s,p", WINDOWS)
def test_max_pool_gradient_matches_loops(device, rng, k, s, p):
    x = rng.standard_normal((2, 2, 7, 6))
    t = to_tensor(x, device, requires_grad=True)
    y = F.max_pool2d(t, k, s, p)
    g = rng.standard_normal(y.shape)
    y.backward(to_tensor(g, device))
    np.testing.assert_allclose(host(t.grad), R.max_pool2d_grad(x, g, k, s, p), atol=1e-12)


def test_max_pool_ties_go_to_first_maximum(device):
    """Constant input: every window ties; the gradient goes to each window's first cell."""
    x = np.ones((1, 1, 4, 4))
    t = to_tensor(x, device, requires_grad=True)
    y = F.max_pool2d(t, 2, 1)
    g = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y.backward(to_tensor(g, device))
    expected = np.zeros((4, 4))
    expected[:3, :3] = g[0, 0]
    np.testing.assert_array_equal(host(t.grad)[0, 0], expected)
    np.testing.assert_array_equal(host(t.grad), R.max_pool2d_grad(x, g, 2, 1))


def test_max_pool_ignores_padding_for_negative_inputs(device):
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = F.max_pool2d(to_tensor(x, device), 2, 2, 1)
    np.testing.assert_array_equal(host(y)[0, 0], [[-1, -2], [-4, -5]])


def test_max_pool_gradient_of_minus_inf_windows_skips_the_padding(device):
    """All -inf input: each window's maximum ties with its -inf padding, and the gradient
    must still reach the window's first input (as in PyTorch), not vanish in the padding."""
    t = to_tensor(np.full((1, 1, 2, 2), -np.inf), device, requires_grad=True)
    F.max_pool2d(t, 2, 1, 1).backward(to_tensor(np.ones((1, 1, 3, 3)), device))
    np.testing.assert_array_equal(host(t.grad)[0, 0], [[4, 2], [2, 1]])   # as PyTorch


@pytest.mark.parametrize("k,s,p", WINDOWS)
def test_avg_pool_matches_loops_and_gradchecks(device, rng, k, s, p):
    x = rng.standard_normal((2, 3, 7, 6))
    check_op(lambda t: F.avg_pool2d(t, k, s, p), [x], lambda a: R.avg_pool2d(a, k, s, p), device)


def test_avg_pool_counts_padding():
    y = F.avg_pool2d(minidl.ones(1, 1, 2, 2), 2, 2, 1)
    np.testing.assert_allclose(y.numpy()[0, 0], [[0.25, 0.25], [0.25, 0.25]])


@pytest.mark.parametrize("shape,out", [((2, 3, 6, 4), 1), ((2, 3, 6, 4), (3, 2)),
                                       ((1, 2, 6, 4), (6, 4)), ((2, 2, 4, 6), (1, 3))])
def test_adaptive_avg_pool(device, rng, shape, out):
    x = rng.standard_normal(shape)
    check_op(lambda t: F.adaptive_avg_pool2d(t, out), [x],
             lambda a: R.adaptive_avg_pool2d(a, out), device)


def test_global_avg_pool(device, rng):
    x = rng.standard_normal((2, 3, 5, 4))
    check_op(F.global_avg_pool2d, [x], lambda a: a.mean(axis=(2, 3), keepdims=True), device)


def test_pooling_reads_channel_major_views(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    cm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    t = minidl.tensor(x)
    t.data = cm
    np.testing.assert_array_equal(F.max_pool2d(t, 2).numpy(), R.max_pool2d(x, 2))
    np.testing.assert_allclose(F.avg_pool2d(t, 3, 1, 1).numpy(), R.avg_pool2d(x, 3, 1, 1))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(t, 2).numpy(), R.adaptive_avg_pool2d(x, 2))


def test_modules(device, rng):
    x = to_tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), device)
    a = host(x).astype(np.float64)
    for m, ref in [(nn.MaxPool2d(2), R.max_pool2d(a, 2)),
                   (nn.MaxPool2d(3, 2, 1), R.max_pool2d(a, 3, 2, 1)),
                   (nn.AvgPool2d(2), R.avg_pool2d(a, 2)),
                   (nn.AvgPool2d(3, stride=1, padding=1), R.avg_pool2d(a, 3, 1, 1)),
                   (nn.AdaptiveAvgPool2d(1), R.adaptive_avg_pool2d(a, 1)),
                   (nn.AdaptiveAvgPool2d((2, 4)), R.adaptive_avg_pool2d(a, (2, 4)))]:
        y = m(x)
        assert y.dtype == np.float32
        np.testing.assert_allclose(host(y), ref, rtol=1e-5, atol=1e-6)
    assert list(nn.MaxPool2d(2).parameters()) == []
    assert "kernel_size=3" in repr(nn.AvgPool2d(3))


def test_torch_parity(rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 9, 8))
    g_cases = [(F.max_pool2d, TF.max_pool2d, (3, 2, 1)), (F.avg_pool2d, TF.avg_pool2d, (3, 2, 1)),
               (F.max_pool2d, TF.max_pool2d, ((2, 3), (2, 1), (1, 1))),
               (F.adaptive_avg_pool2d, TF.adaptive_avg_pool2d, ((3, 4),))]
    for ours, theirs, args in g_cases:
        xt = torch.tensor(x, requires_grad=True)
        xm = minidl.tensor(x, requires_grad=True)
        yt, ym = theirs(xt, *args), ours(xm, *args)
        np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), atol=1e-12)
        g = rng.standard_normal(yt.shape)
        yt.backward(torch.tensor(g))
        ym.backward(minidl.tensor(g))
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("fn,args,exc,match", [
    (F.max_pool2d, (minidl.zeros(8, 8), 2), ValueError, r"max_pool2d: 'input' must be 4-D"),
    (F.avg_pool2d, (minidl.zeros(1, 1, 3, 3), 4), ValueError,
     r"avg_pool2d: kernel height 4 is larger than the padded input height 3"),
    (F.max_pool2d, (minidl.zeros(1, 1, 8, 8), 2, 2, 2), ValueError,
     r"max_pool2d: padding 2 must be at most half the kernel height 2"),
    (F.max_pool2d, (minidl.zeros(1, 1, 8, 8), 2, 0), ValueError,
     r"max_pool2d: 'stride' must be positive, got 0"),
    (F.avg_pool2d, (minidl.zeros(1, 1, 8, 8), 2, 2, -1), ValueError,
     r"avg_pool2d: 'padding' must be non-negative, got -1"),
    (F.max_pool2d, (minidl.zeros(1, 1, 8, 8), 0), ValueError,
     r"max_pool2d: 'kernel_size' must be positive"),
    (F.max_pool2d, (minidl.zeros(1, 1, 8, 8), 2.0), TypeError,
     r"max_pool2d: 'kernel_size' must be an int or a pair of ints"),
    (F.adaptive_avg_pool2d, (minidl.zeros(1, 1, 8, 8), 0), ValueError,
     r"adaptive_avg_pool2d: 'output_size' must be positive"),
    (F.global_avg_pool2d, (minidl.zeros(2, 8),), ValueError,
     r"global_avg_pool2d: 'input' must be 4-D"),
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 2), TypeError,
     r"max_pool2d: argument 'input' must be a Tensor"),
])
def test_bad_input(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args)


def test_pool_modules_are_distinct_kinds():
    """Code that checks layer types must not take an average pool for a max pool."""
    assert not isinstance(nn.AvgPool2d(2), nn.MaxPool2d)
    assert not isinstance(nn.MaxPool2d(2), nn.AvgPool2d)


# ---------------------------------------------------------------------------------------------
# PyTorch's full argument set: dilation, ceil_mode, return_indices, divisors, adaptive bins

# kernel, stride, padding, dilation, ceil_mode; on a 7 x 6 input
MAX_EX = [(3, 2, 1, 1, True), (2, 2, 0, 1, True), (3, 1, 1, 2, False), (2, 3, 1, 2, True),
          ((3, 2), (2, 3), (1, 1), (2, 1), True), (3, 2, 0, (1, 2), False), (3, 3, 1, 1, True),
          (2, 2, 1, 2, True)]           # stride >= kernel, yet dilated windows share cells


def _max_ex(x, k, s, p, d, ceil):
    return F.max_pool2d(x, k, s, p, dilation=d, ceil_mode=ceil, return_indices=True)


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_EX)
def test_max_pool_ex_matches_loops_and_gradchecks(device, rng, k, s, p, d, ceil):
    x = rng.standard_normal((2, 3, 7, 6))
    check_op(lambda t: F.max_pool2d(t, k, s, p, d, ceil), [x],
             lambda a: R.max_pool2d_ex(a, k, s, p, d, ceil)[0], device)
    y, idx = _max_ex(to_tensor(x, device), k, s, p, d, ceil)
    ref_y, ref_idx = R.max_pool2d_ex(x, k, s, p, d, ceil)
    assert idx.dtype == np.int64 and not idx.requires_grad
    np.testing.assert_array_equal(host(idx), ref_idx)
    np.testing.assert_array_equal(host(y), ref_y)


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_EX)
def test_max_pool_ex_ties_gradient_and_indices_match_loops(device, rng, k, s, p, d, ceil):
    """Small integers: many ties, which must go to each window's first maximum."""
    x = rng.integers(-2, 2, (2, 2, 7, 6)).astype(np.float64)
    t = to_tensor(x, device, requires_grad=True)
    y, idx = _max_ex(t, k, s, p, d, ceil)
    g = rng.standard_normal(y.shape)
    y.backward(to_tensor(g, device))
    np.testing.assert_allclose(host(t.grad), R.max_pool2d_ex_grad(x, g, k, s, p, d, ceil),
                               atol=1e-12)
    np.testing.assert_array_equal(host(idx), R.max_pool2d_ex(x, k, s, p, d, ceil)[1])


def test_max_pool_ceil_mode_shapes():
    """PyTorch's rule: round up, unless the last window would start in the right padding."""
    # H=8, k=2, s=3, p=1: a 4th window would start at row 8, in the right padding: dropped
    for H, k, s, p, want in [(5, 2, 2, 0, 3), (4, 2, 2, 0, 2), (6, 3, 2, 1, 4), (5, 3, 2, 1, 3),
                             (7, 3, 3, 1, 3), (8, 2, 3, 1, 3), (9, 2, 3, 1, 4), (3, 2, 2, 1, 2),
                             (4, 3, 3, 1, 2)]:
        y = F.max_pool2d(minidl.zeros(1, 1, H, H), k, s, p, ceil_mode=True)
        assert y.shape == (1, 1, want, want), (H, k, s, p, y.shape)
        assert want == R.pool_out_len(H, k, s, p, 1, True)


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("H,k,s", [(2, 3, 2), (1, 2, 2), (3, 4, 3)])
def test_ceil_mode_keeps_one_window_larger_than_the_input(device, fn, H, k, s):
    """With ceil_mode a kernel larger than the input still gives the one window that starts
    inside it (PyTorch: MaxPool2d(3, 2, ceil_mode=True) on a 2x2 map gives its max)."""
    x = np.arange(1.0, H * H + 1).reshape(1, 1, H, H)
    y = getattr(F, fn)(to_tensor(x, device), k, s, ceil_mode=True)
    assert y.shape == (1, 1, 1, 1)
    assert host(y).item() == (x.max() if fn == "max_pool2d" else x.mean())
    with pytest.raises(ValueError, match=f"{fn}: kernel height {k} is larger than the padded"):
        getattr(F, fn)(to_tensor(x, device), k, s)


def test_max_pool_nan_and_minus_inf(device):
    """A NaN window gives NaN, its last NaN as index (as PyTorch) and no gradient; a -inf
    window gives its first input cell."""
    x = np.array([[[[1.0, np.nan, 3.0, np.nan],
                    [0.0, 2.0, -np.inf, -np.inf],
                    [5.0, 5.0, -np.inf, -np.inf]]]])
    t = to_tensor(x, device, requires_grad=True)
    y, idx = F.max_pool2d(t, 2, 2, ceil_mode=True, return_indices=True)
    ref_y, ref_idx = R.max_pool2d_ex(x, 2, 2, 0, 1, True)
    np.testing.assert_array_equal(host(y), ref_y)
    np.testing.assert_array_equal(host(idx), ref_idx)
    np.testing.assert_array_equal(ref_idx[0, 0], [[1, 3], [8, 10]])
    y.backward(to_tensor(np.ones(y.shape), device))
    np.testing.assert_array_equal(host(t.grad), R.max_pool2d_ex_grad(
        x, np.ones(y.shape), 2, 2, 0, 1, True))
    assert host(t.grad)[0, 0, 2].tolist() == [1, 0, 1, 0]
    x = np.full((1, 1, 3, 2), -np.inf)          # windows tie with their (top/left) padding
    y, idx = F.max_pool2d(to_tensor(x, device), 2, 1, 1, dilation=(2, 1), return_indices=True)
    np.testing.assert_array_equal(host(idx), R.max_pool2d_ex(x, 2, 1, 1, (2, 1))[1])
    np.testing.assert_array_equal(host(idx)[0, 0], [[2, 2, 3], [0, 0, 1], [2, 2, 3]])  # torch


# kernel, stride, padding, ceil_mode, count_include_pad, divisor_override; on a 7 x 6 input
AVG_EX = [(3, 2, 1, True, True, None), (3, 2, 1, False, False, None),
          (3, 2, 1, True, False, None), (2, 2, 0, True, True, None), (2, 3, 1, True, True, None),
          ((3, 2), (2, 1), (1, 1), True, False, None), (3, 2, 1, True, True, 4),
          (2, 1, 1, False, False, -3)]


@pytest.mark.parametrize("k,s,p,ceil,cip,div", AVG_EX)
def test_avg_pool_ex_matches_loops_and_gradchecks(device, rng, k, s, p, ceil, cip, div):
    x = rng.standard_normal((2, 3, 7, 6))
    check_op(lambda t: F.avg_pool2d(t, k, s, p, ceil, cip, div), [x],
             lambda a: R.avg_pool2d_ex(a, k, s, p, ceil, cip, div), device)


def test_avg_pool_divisors_by_hand():
    """Inputs of ones, so each output is (cells inside the input) / divisor."""
    y = F.avg_pool2d(minidl.ones(1, 1, 3, 3), 2, 2, 1, count_include_pad=False)
    np.testing.assert_allclose(y.numpy()[0, 0], np.ones((2, 2)))
    # 4 x 4, kernel 3, stride 2, padding 1, ceil_mode: rows of windows -1..1, 1..3, 3..5; the
    # last one has 2 cells inside the padded input (-1..4) and 1 inside the input
    y = F.avg_pool2d(minidl.ones(1, 1, 4, 4), 3, 2, 1, ceil_mode=True)
    np.testing.assert_allclose(y.numpy()[0, 0, 2], [2 / 6, 3 / 6, 1 / 4])
    np.testing.assert_allclose(y.numpy()[0, 0, 1], [6 / 9, 9 / 9, 3 / 6])
    y = F.avg_pool2d(minidl.ones(1, 1, 4, 4), 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y.numpy(), np.ones((1, 1, 3, 3)))
    y = F.avg_pool2d(minidl.ones(1, 1, 4, 4), 2, divisor_override=3)
    np.testing.assert_allclose(y.numpy(), np.full((1, 1, 2, 2), 4 / 3))


@pytest.mark.parametrize("shape,out", [((2, 3, 5, 5), 2), ((2, 2, 5, 7), (3, 4)),
                                       ((1, 2, 3, 3), 5), ((2, 2, 7, 6), (None, 4)),
                                       ((1, 2, 2, 1), (3, 2)), ((2, 2, 6, 5), (3, None))])
def test_adaptive_avg_pool_unequal_bins(device, rng, shape, out):
    x = rng.standard_normal(shape)
    size = tuple(n if o is None else o for o, n in
                 zip(out if isinstance(out, tuple) else (out, out), shape[2:]))
    check_op(lambda t: F.adaptive_avg_pool2d(t, out), [x],
             lambda a: R.adaptive_avg_pool2d(a, size), device)


def _adaptive_max_grad(x, gy, size):
    """gy to each bin's first maximum (loop oracle's index), none from NaN bins."""
    y, idx = R.adaptive_max_pool2d(x, size)
    gx = np.zeros_like(x)
    N, C, H, W = x.shape
    for n, c, i, j in np.ndindex(*y.shape):
        if not np.isnan(y[n, c, i, j]):
            gx[n, c, idx[n, c, i, j] // W, idx[n, c, i, j] % W] += gy[n, c, i, j]
    return gx


@pytest.mark.parametrize("shape,out", [((2, 3, 5, 5), 2), ((2, 2, 5, 7), (3, 4)),
                                       ((1, 2, 3, 3), 5), ((2, 2, 6, 4), (3, 2)),
                                       ((1, 2, 1, 2), (2, None)), ((2, 2, 6, 6), (None, 4))])
def test_adaptive_max_pool(device, rng, shape, out):
    pair = out if isinstance(out, tuple) else (out, out)
    size = tuple(n if o is None else o for o, n in zip(pair, shape[2:]))
    x = rng.standard_normal(shape)
    check_op(lambda t: F.adaptive_max_pool2d(t, out), [x],
             lambda a: R.adaptive_max_pool2d(a, size)[0], device)
    xi = rng.integers(-2, 2, shape).astype(np.float64)          # ties
    t = to_tensor(xi, device, requires_grad=True)
    y, idx = F.adaptive_max_pool2d(t, out, return_indices=True)
    ref_y, ref_idx = R.adaptive_max_pool2d(xi, size)
    np.testing.assert_array_equal(host(y), ref_y)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(host(idx), ref_idx)
    g = rng.standard_normal(y.shape)
    y.backward(to_tensor(g, device))
    np.testing.assert_allclose(host(t.grad), _adaptive_max_grad(xi, g, size), atol=1e-12)


def test_adaptive_max_pool_nan(device):
    x = np.array([[[[np.nan, 1.0, np.nan], [2.0, 0.0, 3.0], [-np.inf, -np.inf, -np.inf]]]])
    t = to_tensor(x, device, requires_grad=True)
    y, idx = F.adaptive_max_pool2d(t, 2, return_indices=True)
    ref_y, ref_idx = R.adaptive_max_pool2d(x, 2)
    np.testing.assert_array_equal(host(y), ref_y)
    np.testing.assert_array_equal(host(idx), ref_idx)
    y.backward(to_tensor(np.ones(y.shape), device))
    np.testing.assert_array_equal(host(t.grad), _adaptive_max_grad(x, np.ones(y.shape), 2))


def test_modules_take_pytorch_arguments(device, rng):
    x = to_tensor(rng.standard_normal((2, 3, 7, 7)).astype(np.float32), device)
    a = host(x).astype(np.float64)
    m = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
    assert repr(m) == ("MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, "
                       "return_indices=False, ceil_mode=True)")
    np.testing.assert_allclose(host(m(x)), R.max_pool2d_ex(a, 3, 2, 1, 1, True)[0], rtol=1e-6)
    y, idx = nn.MaxPool2d(2, dilation=2, return_indices=True)(x)
    ref = R.max_pool2d_ex(a, 2, 2, 0, 2, False)
    np.testing.assert_allclose(host(y), ref[0], rtol=1e-6)
    np.testing.assert_array_equal(host(idx), ref[1])
    m = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=None)
    assert "ceil_mode=True, count_include_pad=False, divisor_override=None" in repr(m)
    assert m.stride == 2 and nn.AvgPool2d(3).stride == 3 and nn.MaxPool2d(2).stride == 2
    np.testing.assert_allclose(host(m(x)), R.avg_pool2d_ex(a, 3, 2, 1, True, False),
                               rtol=1e-5, atol=1e-6)
    m = nn.AdaptiveMaxPool2d((2, None), return_indices=True)
    assert repr(m) == "AdaptiveMaxPool2d(output_size=(2, None), return_indices=True)"
    y, idx = m(x)
    ref = R.adaptive_max_pool2d(a, (2, 7))
    np.testing.assert_allclose(host(y), ref[0], rtol=1e-6)
    np.testing.assert_array_equal(host(idx), ref[1])
    y = nn.AdaptiveAvgPool2d(3)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(host(y), R.adaptive_avg_pool2d(a, 3), rtol=1e-5, atol=1e-6)
    assert y.dtype == nn.AdaptiveMaxPool2d(3)(x).dtype == np.float32


TORCH_CASES = [
    ("max", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max", dict(kernel_size=2, stride=2, ceil_mode=True)),
    ("max", dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ("max", dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 1),
                 ceil_mode=True)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg", dict(kernel_size=2, stride=3, padding=1, ceil_mode=True)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, divisor_override=5)),
    ("adaptive_avg", dict(output_size=(4, 3))), ("adaptive_avg", dict(output_size=11)),
    ("adaptive_max", dict(output_size=(4, 3))), ("adaptive_max", dict(output_size=(None, 2))),
    ("adaptive_max", dict(output_size=11)),
]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("kind,kw", TORCH_CASES)
def test_torch_parity_full_arguments(rng, kind, kw, ties):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = (rng.integers(-2, 2, (2, 2, 9, 8)).astype(np.float64) if ties
         else rng.standard_normal((2, 2, 9, 8)))
    ours = getattr(F, f"{kind}_pool2d")
    theirs = getattr(TF, f"{kind}_pool2d")
    if kind in ("max", "adaptive_max"):
        kw = dict(kw, return_indices=True)
    xt, xm = torch.tensor(x, requires_grad=True), minidl.tensor(x, requires_grad=True)
    yt, ym = theirs(xt, **kw), ours(xm, **kw)
    if isinstance(yt, tuple):
        (yt, it), (ym, im) = yt, ym
        np.testing.assert_array_equal(im.numpy(), it.numpy())
    np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.tensor(g))
    ym.backward(minidl.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-12)


def test_torch_parity_nan_indices(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 2, 6, 5))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[0, 1, 4, 4] = np.nan
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True,
                                            return_indices=True)
    ym, im = F.max_pool2d(minidl.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(ym.numpy(), yt.numpy())
    np.testing.assert_array_equal(im.numpy(), it.numpy())
    yt, it = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), 4, return_indices=True)
    ym, im = F.adaptive_max_pool2d(minidl.tensor(x), 4, return_indices=True)
    np.testing.assert_array_equal(ym.numpy(), yt.numpy())
    np.testing.assert_array_equal(im.numpy(), it.numpy())


X8 = minidl.zeros(1, 1, 8, 8)


@pytest.mark.parametrize("fn,args,kw,exc,match", [
    (F.max_pool2d, (X8, 2), dict(dilation=(0, 1)), ValueError,
     r"max_pool2d: 'dilation' must be positive, got \(0, 1\)"),
    (F.max_pool2d, (X8, 3, 1, 2), dict(dilation=2), ValueError,
     r"max_pool2d: padding 2 must be at most half the kernel height 3"),
    (F.max_pool2d, (minidl.zeros(1, 1, 4, 8), 3), dict(dilation=2), ValueError,
     r"max_pool2d: dilated kernel height 5 \(kernel 3, dilation 2\) is larger than the padded "
     r"input height 4"),
    (F.max_pool2d, (X8, 2), dict(ceil_mode=1), TypeError,
     r"max_pool2d: 'ceil_mode' must be a bool, got int 1"),
    (F.max_pool2d, (X8, 2), dict(return_indices="yes"), TypeError,
     r"max_pool2d: 'return_indices' must be a bool"),
    (F.max_pool2d, (X8, 2), dict(stride=(1, -1)), ValueError,
     r"max_pool2d: 'stride' must be positive, got \(1, -1\)"),
    (F.avg_pool2d, (X8, 2), dict(divisor_override=0), ValueError,
     r"avg_pool2d: 'divisor_override' must not be zero, got 0"),
    (F.avg_pool2d, (X8, 2), dict(divisor_override=2.5), TypeError,
     r"avg_pool2d: 'divisor_override' must be an int or None, got float 2.5"),
    (F.avg_pool2d, (X8, 2), dict(count_include_pad=None), TypeError,
     r"avg_pool2d: 'count_include_pad' must be a bool, got None"),
    (F.avg_pool2d, (X8, (2, 4), 1, (1, 3)), {}, ValueError,
     r"avg_pool2d: padding 3 must be at most half the kernel width 4"),
    (F.adaptive_avg_pool2d, (X8, (3, 0)), {}, ValueError,
     r"adaptive_avg_pool2d: 'output_size' must be positive, got \(3, 0\)"),
    (F.adaptive_max_pool2d, (X8, -1), {}, ValueError,
     r"adaptive_max_pool2d: 'output_size' must be positive, got -1"),
    (F.adaptive_max_pool2d, (X8, (2, 2, 2)), {}, TypeError,
     r"adaptive_max_pool2d: 'output_size' must be an int or a pair of ints"),
    (F.adaptive_max_pool2d, (minidl.zeros(8, 8), 2), {}, ValueError,
     r"adaptive_max_pool2d: 'input' must be 4-D \(N, C, H, W\) or 3-D \(C, H, W\), got "
     r"shape \(8, 8\)"),
    (F.adaptive_max_pool2d, (minidl.zeros(1, 1, 0, 3), 2), {}, ValueError,
     r"adaptive_max_pool2d: the input's height and width must be non-zero, got shape "
     r"\(1, 1, 0, 3\)"),
    (F.adaptive_avg_pool2d, (minidl.zeros(1, 1, 3, 0), 2), {}, ValueError,
     r"adaptive_avg_pool2d: the input's height and width must be non-zero"),
    (F.adaptive_max_pool2d, (X8, 2), dict(return_indices=1), TypeError,
     r"adaptive_max_pool2d: 'return_indices' must be a bool, got int 1"),
    (F.adaptive_max_pool2d, (minidl.zeros(1, 1, 4, 4, dtype=minidl.int64), 2), {}, TypeError,
     r"adaptive_max_pool2d: argument 'input' must be a floating-point tensor"),
])
def test_bad_arguments(fn, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


def test_bad_module_arguments_fail_at_forward():
    with pytest.raises(ValueError, match=r"max_pool2d: 'kernel_size' must be positive"):
        nn.MaxPool2d(0)(X8)
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: 'output_size' must be posit"):
        nn.AdaptiveMaxPool2d(0)(X8)


def test_dilated_windows_that_reach_no_input_are_refused():
    """Taps at -1 and 1 of a 1-row input see only padding: PyTorch returns -inf and an index
    outside the input there (its backward then writes out of bounds); minidl refuses the
    geometry. A window with one tap inside is fine."""
    x = minidl.randn(1, 1, 1, 2)
    with pytest.raises(ValueError, match=r"max_pool2d: the window at output height 0 \(taps "
                                         r"at height \[-1, 1\]\) covers no input height "
                                         r"\(size 1\): with dilation 2, padding 1"):
        F.max_pool2d(x, (2, 1), 1, (1, 0), (2, 1))
    y, idx = F.max_pool2d(minidl.tensor([[[[5.0, 7.0, 1.0]]]]), (1, 2), 1, (0, 1), (1, 2),
                          return_indices=True)          # taps (-1, 1), (0, 2), (1, 3): valid
    assert host(y).tolist() == [[[[7.0, 5.0, 7.0]]]] and host(idx).tolist() == [[[[1, 0, 1]]]]


def test_global_avg_pool2d_of_an_empty_image_is_a_clear_error():
    with pytest.raises(ValueError, match=r"global_avg_pool2d: the input's height and width "
                                         r"must be non-zero, got shape \(1, 2, 0, 4\)"):
        F.global_avg_pool2d(minidl.zeros(1, 2, 0, 4))


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                                  "adaptive_avg_pool2d", "adaptive_max_pool2d",
                                  "global_avg_pool2d"])
def test_one_unbatched_image_is_a_batch_of_one(device, rng, name):
    """(C, H, W) input, as PyTorch's spatial ops take it: the result is the batch-of-one
    result without its batch axis, and so is the gradient (float64 gradcheck)."""
    w = to_tensor(rng.standard_normal((3, 3, 3, 3)), device)
    calls = {"conv2d": lambda t: F.conv2d(t, w, stride=2, padding=1),
             "conv_transpose2d": lambda t: F.conv_transpose2d(t, w, stride=2),
             "max_pool2d": lambda t: F.max_pool2d(t, 3, 2, 1),
             "avg_pool2d": lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
             "adaptive_avg_pool2d": lambda t: F.adaptive_avg_pool2d(t, 3),
             "adaptive_max_pool2d": lambda t: F.adaptive_max_pool2d(t, (3, 2)),
             "global_avg_pool2d": F.global_avg_pool2d}
    fn = calls[name]
    x = rng.standard_normal((3, 7, 6))
    batched = host(fn(to_tensor(x[None], device)))
    check_op(fn, [x], lambda a: batched[0], device, check_float32=False)   # (w is float64)
    if name == "max_pool2d":
        y, idx = F.max_pool2d(to_tensor(x, device), 3, 2, 1, return_indices=True)
        assert y.shape == idx.shape == batched.shape[1:]
