"""max_pool2d, avg_pool2d, adaptive_avg_pool2d, global_avg_pool2d and their modules: forward
and gradient vs loop oracles, float64 gradchecks, deterministic ties, dtype, torch parity, bad
input."""
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
    (F.max_pool2d, (minidl.zeros(3, 8, 8), 2), ValueError, r"max_pool2d: 'input' must be 4-D"),
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
    (F.adaptive_avg_pool2d, (minidl.zeros(1, 1, 7, 8), 2), ValueError,
     r"adaptive_avg_pool2d: output size \(2, 2\) must divide the input size \(7, 8\)"),
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
