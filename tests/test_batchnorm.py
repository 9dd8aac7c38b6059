"""batch_norm, BatchNorm1d and BatchNorm2d: training/eval forward vs a per-channel loop oracle,
float64 gradchecks with random upstream gradients (an all-ones upstream makes the input gradient
vanish, so it proves nothing), running-statistic updates, PyTorch semantics, bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.kernels import threads
from tests import reference as R
from tests.helpers import check_op, host, to_tensor

SHAPES = [(5, 3), (4, 3, 6), (2, 3, 4, 5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_training_forward_and_gradcheck(device, rng, shape, affine):
    x = rng.standard_normal(shape) * 3.0 + 2.0
    arrays = [x] + ([rng.standard_normal(3), rng.standard_normal(3)] if affine else [])

    def fn(t, w=None, b=None):
        return F.batch_norm(t, None, None, w, b, training=True)

    def ref(a, w=None, b=None):
        return R.batch_norm_train(a, w, b, 1e-5)[0]
    check_op(fn, arrays, ref, device)


@pytest.mark.parametrize("shape", SHAPES)
def test_eval_forward_and_gradcheck(device, rng, shape):
    x = rng.standard_normal(shape)
    rm = to_tensor(rng.standard_normal(3), device)
    rv = to_tensor(rng.uniform(0.5, 2.0, 3), device)
    w, b = rng.standard_normal(3), rng.standard_normal(3)

    def fn(t, ww, bb):
        return F.batch_norm(t, rm.double(), rv.double(), ww, bb, training=False)

    check_op(fn, [x, w, b],
             lambda a, ww, bb: R.batch_norm_eval(a, host(rm), host(rv), ww, bb, 1e-5), device)


def test_ones_upstream_gives_zero_input_grad_but_random_does_not(rng):
    """Why the gradchecks above use random upstream gradients."""
    x = minidl.tensor(rng.standard_normal((4, 3, 2, 2)), requires_grad=True)
    F.batch_norm(x, None, None, training=True).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 0.0, atol=1e-12)
    x.grad = None
    F.batch_norm(x, None, None, training=True).backward(
        minidl.tensor(rng.standard_normal((4, 3, 2, 2))))
    assert np.abs(x.grad.numpy()).max() > 0.1


def test_running_stats_follow_pytorch_rules(device, rng):
    m = nn.BatchNorm2d(3, momentum=0.2).to(device)
    mean, var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rng.standard_normal((4, 3, 3, 2)) * (step + 1) + step
        y = m(to_tensor(x, device, dtype=np.float32))
        ref, bm, bv, bu = R.batch_norm_train(x, np.ones(3), np.zeros(3), 1e-5)
        np.testing.assert_allclose(host(y), ref, rtol=1e-4, atol=1e-5)
        mean = 0.8 * mean + 0.2 * bm
        var = 0.8 * var + 0.2 * bu                  # unbiased variance for running_var
        np.testing.assert_allclose(host(m.running_mean), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(host(m.running_var), var, rtol=1e-5, atol=1e-6)
        assert int(host(m.num_batches_tracked)) == step + 1
    m.eval()
    x = rng.standard_normal((2, 3, 3, 2))
    y = m(to_tensor(x, device, dtype=np.float32))
    np.testing.assert_allclose(host(y), R.batch_norm_eval(x, mean, var, np.ones(3), np.zeros(3),
                                                          1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host(m.running_mean), mean, rtol=1e-5)   # eval leaves them
    assert int(host(m.num_batches_tracked)) == 3


def test_momentum_none_is_cumulative_average(rng):
    m = nn.BatchNorm1d(2, momentum=None)
    xs = [rng.standard_normal((6, 2)) + k for k in range(3)]
    for x in xs:
        m(minidl.tensor(x, dtype=np.float32))
    np.testing.assert_allclose(m.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0),
                               rtol=1e-5)
    np.testing.assert_allclose(m.running_var.numpy(), np.mean([x.var(0, ddof=1) for x in xs], 0),
                               rtol=1e-5)


def test_no_running_stats_uses_batch_stats_in_eval(rng):
    m = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    assert m.running_mean is None and list(m.parameters()) == []
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(m(minidl.tensor(x, dtype=np.float32)).numpy(),
                               R.batch_norm_train(x, None, None, 1e-5)[0], rtol=1e-5, atol=1e-5)


def test_module_layout_and_state(device):
    m = nn.BatchNorm2d(4)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                    "num_batches_tracked"]
    assert m.num_batches_tracked.dtype == np.int64 and m.running_var.dtype == np.float32
    m.to(device)
    y = m(to_tensor(np.random.default_rng(0).standard_normal((2, 4, 3, 3)), device,
                    dtype=np.float32))
    assert y.dtype == np.float32 and m.running_mean.dtype == np.float32
    b1 = nn.BatchNorm1d(3)
    assert b1(minidl.randn(4, 3)).shape == (4, 3)
    assert b1(minidl.randn(4, 3, 5)).shape == (4, 3, 5)


def test_channel_major_input(rng):
    x = rng.standard_normal((3, 4, 5, 2))
    t = minidl.tensor(x)
    t.data = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(F.batch_norm(t, None, None, training=True).numpy(),
                               R.batch_norm_train(x, None, None, 1e-5)[0], atol=1e-12)


@pytest.mark.parametrize("act", [None, "relu", "relu6"])
def test_eval_on_channel_major_input_in_channel_blocks(rng, monkeypatch, threaded, act):
    """Eval mode on the channel-major memory a convolution gives runs as y = x * s + t in
    blocks of channels on the threads (3 here); the same values and gradients as for an NCHW
    input (which takes the broadcasting form), and it passes gradcheck (weight only, and
    weight and bias)."""
    x = rng.standard_normal((3, 5, 4, 2)) * 2.0 + 0.5
    cm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    rm = minidl.tensor(rng.standard_normal(5))
    rv = minidl.tensor(rng.uniform(0.5, 2.0, 5))
    w, b, gy = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(x.shape)

    def fn(t, ww, bb=None):
        if act is None:
            return F.batch_norm(t, rm, rv, ww, bb, training=False)
        return F.batch_norm_relu(t, rm, rv, ww, bb, training=False,
                                 max_value=6.0 if act == "relu6" else None)

    def leaf(a):                        # keeps a's memory layout (minidl.tensor would not)
        t = minidl.tensor(a, requires_grad=True)
        t.data = a
        return t

    real, parts = threads.parallel, []

    def spy(f, n, items=None):
        parts.append(n)
        return real(f, n, items)

    monkeypatch.setattr(threads, "parallel", spy)
    results = []
    for data, blocks in ((x, []), (cm, [5])):
        ts = [leaf(a) for a in (data, w, b)]
        parts.clear()
        y = fn(*ts)
        assert parts == blocks                     # channel blocks only for channel-major x
        y.backward(minidl.tensor(gy))
        results.append([y.numpy()] + [t.grad.numpy() for t in ts])
    ref = R.batch_norm_eval(x, rm.numpy(), rv.numpy(), w, b, 1e-5)
    if act is not None:
        ref = np.clip(ref, 0, 6.0 if act == "relu6" else None)
    np.testing.assert_allclose(results[1][0], ref, atol=1e-12)
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    assert minidl.gradcheck(fn, [leaf(cm), leaf(w), leaf(b)])
    assert minidl.gradcheck(fn, [leaf(cm), leaf(w)])


def test_torch_parity(rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    mm = nn.BatchNorm2d(3, momentum=0.3).double()
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(w))
        tm.bias.copy_(torch.tensor(b))
    mm.load_state_dict({"weight": w, "bias": b}, strict=False)
    for _ in range(2):
        x = rng.standard_normal((4, 3, 3, 3)) * 2 + 1
        g = rng.standard_normal(x.shape)
        xt = torch.tensor(x, requires_grad=True)
        xm = minidl.tensor(x, requires_grad=True)
        yt, ym = tm(xt), mm(xm)
        np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), atol=1e-12)
        yt.backward(torch.tensor(g))
        ym.backward(minidl.tensor(g))
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-10)
        np.testing.assert_allclose(mm.weight.grad.numpy(), tm.weight.grad.numpy(), atol=1e-10)
        np.testing.assert_allclose(mm.bias.grad.numpy(), tm.bias.grad.numpy(), atol=1e-10)
        mm.zero_grad()
        tm.zero_grad()
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(mm, name).numpy(), getattr(tm, name).numpy(),
                                   atol=1e-12)
    tm.eval()
    mm.eval()
    x = rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_allclose(mm(minidl.tensor(x)).numpy(),
                               tm(torch.tensor(x)).detach().numpy(), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# bad input

def test_wrong_channel_count():
    with pytest.raises(ValueError, match=r"BatchNorm2d: input has 4 channels, the layer "
                                         r"expects 3 \(num_features\)"):
        nn.BatchNorm2d(3)(minidl.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"batch_norm: 'running_mean' must have shape \(4,\)"):
        F.batch_norm(minidl.zeros(2, 4, 5, 5), minidl.zeros(3), minidl.ones(3), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: 'weight' must have shape \(4,\)"):
        F.batch_norm(minidl.zeros(2, 4), None, None, minidl.ones(2), minidl.ones(2), True)


@pytest.mark.parametrize("module,x,match", [
    (nn.BatchNorm1d(3), minidl.zeros(2, 3, 4, 4), r"BatchNorm1d: expected a 2-D or 3-D input"),
    (nn.BatchNorm2d(3), minidl.zeros(2, 3), r"BatchNorm2d: expected a 4-D input"),
    (nn.BatchNorm1d(3), minidl.zeros(1, 3), r"batch_norm: training needs more than 1 value "
                                            r"per channel"),
])
def test_bad_module_input(module, x, match):
    with pytest.raises(ValueError, match=match):
        module(x)


@pytest.mark.parametrize("kw,match", [
    ({"num_features": 0}, r"BatchNorm2d: 'num_features' must be a positive int"),
    ({"num_features": 3, "eps": 0}, r"BatchNorm2d: 'eps' must be a positive number"),
    ({"num_features": 3, "momentum": 1.5},
     r"BatchNorm2d: 'momentum' must be a number in \[0, 1\] or None, got 1.5"),
])
def test_bad_constructor(kw, match):
    with pytest.raises(ValueError, match=match):
        nn.BatchNorm2d(**kw)


def test_bad_functional_arguments():
    x = minidl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"batch_norm: eval mode \(training=False\) needs"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"batch_norm: give both running_mean and running_var"):
        F.batch_norm(x, minidl.zeros(3), None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: 'momentum' must be a number in \[0, 1\]"):
        F.batch_norm(x, None, None, training=True, momentum=-0.1)
    with pytest.raises(ValueError, match=r"batch_norm: 'input' must have at least 2 dim"):
        F.batch_norm(minidl.zeros(3), None, None, training=True)
    with pytest.raises(TypeError, match=r"batch_norm: argument 'input' must be a floating"):
        F.batch_norm(minidl.tensor([[1, 2]]), None, None, training=True)


def test_dtype_mismatch_of_affine_parameters():
    with pytest.raises(TypeError, match=r"batch_norm: 'weight' has dtype float64, the input "
                                        r"float32"):
        F.batch_norm(minidl.zeros(2, 3), None, None, minidl.ones(3, dtype=np.float64),
                     minidl.zeros(3, dtype=np.float64), training=True)


# ---------------------------------------------------------------------------------------------
# batch_norm_relu: the fused op equals relu(batch_norm(...))

@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_relu_gradcheck_and_reference(device, rng, training, affine):
    x = rng.standard_normal((3, 3, 4, 2)) * 2.0 + 0.5
    rm = to_tensor(rng.standard_normal(3), device, dtype=np.float64)
    rv = to_tensor(rng.uniform(0.5, 2.0, 3), device, dtype=np.float64)
    arrays = [x] + ([rng.standard_normal(3), rng.standard_normal(3)] if affine else [])

    def fn(t, w=None, b=None):
        return F.batch_norm_relu(t, None if training else rm, None if training else rv, w, b,
                                 training=training)

    def ref(a, w=None, b=None):
        y = (R.batch_norm_train(a, w, b, 1e-5)[0] if training else
             R.batch_norm_eval(a, host(rm), host(rv), w, b, 1e-5))
        return np.maximum(y, 0)
    check_op(fn, arrays, ref, device)


def test_batch_norm_relu_module_matches_the_pair(rng):
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    fused, pair = nn.BatchNormReLU2d(3), nn.BatchNorm2d(3)
    assert list(fused.state_dict()) == list(pair.state_dict())
    outs = []
    for m, post in ((fused, lambda t: t), (pair, F.relu)):
        for mode in ("train", "eval"):
            getattr(m, mode)()
            xt = minidl.tensor(x, requires_grad=True)
            y = post(m(xt))
            y.backward(minidl.tensor(g))
            outs.append([y.numpy(), xt.grad.numpy(), m.weight.grad.numpy(),
                         m.bias.grad.numpy(), m.running_mean.numpy(), m.running_var.numpy()])
            m.zero_grad()
    for u, v in zip(outs[:2], outs[2:]):
        for a, b in zip(u, v):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_float32_channel_sums_keep_float32_precision():
    """Per-channel sums over ~10^5 values (a CIFAR batch) accumulate in float64 (across float32
    blocks for the dot products): float32 running sums (einsum) were 3e-6 off in the variance
    and weight gradient, 5e-7 in the bias gradient (now 7e-8, 3e-7, 4e-8). gy has mean 0:
    with an offset, the float32 rounding of the mean alone shifts sum(gy * xhat) by about
    n * ulp(mean) * mean(gy) / std, which no summation can undo."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 2, 64, 64)) * 0.5 + 3.0).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    out = {}
    for dtype in (np.float64, np.float32):
        xt = minidl.tensor(x.astype(dtype), requires_grad=True)
        w = minidl.tensor(np.ones(2, dtype), requires_grad=True)
        b = minidl.tensor(np.zeros(2, dtype), requires_grad=True)
        rv = minidl.tensor(np.zeros(2, dtype))
        F.batch_norm(xt, minidl.tensor(np.zeros(2, dtype)), rv, w, b, training=True,
                     momentum=1.0).backward(minidl.tensor(gy.astype(dtype)))
        out[dtype] = rv.numpy(), w.grad.numpy(), b.grad.numpy()
    for exact, got, rtol in zip(out[np.float64], out[np.float32], (5e-7, 1e-6, 2e-7)):
        np.testing.assert_allclose(got, exact, rtol=rtol)


# -- per-channel vectors the GPU kernels cannot read in place; NaN through BN+ReLU; the
#    cumulative average without host reads ----------------------------------------------------

def _bn_odd_vectors(device, x, w_full, rv_dtype, relu):
    """Training BN(+ReLU) with a strided weight view, a strided running_mean view and a
    running_var of ``rv_dtype``: output, input/weight gradients, running stats, the untouched
    neighbours of the strided views."""
    C = x.shape[1]
    xt = to_tensor(x, device, requires_grad=True)
    wt = to_tensor(w_full, device, requires_grad=True)
    rm_full = to_tensor(np.arange(2 * C, dtype=np.float32), device)
    rv = to_tensor(np.full(C, 2.0), device, dtype=rv_dtype)
    fn = F.batch_norm_relu if relu else F.batch_norm
    y = fn(xt, rm_full[::2], rv, wt[::2], None, training=True, momentum=0.25)
    y.backward(to_tensor(np.linspace(-1, 1, int(np.prod(y.shape))).reshape(y.shape), device,
                         dtype=np.float32))
    rm = host(rm_full)
    return [host(y), host(xt.grad), host(wt.grad), rm[::2], host(rv)], rm[1::2]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("rv_dtype", [np.float32, np.float64])
def test_strided_and_other_dtype_vectors_match_the_cpu(device, rng, relu, rv_dtype):
    x = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    w_full = rng.standard_normal(12).astype(np.float32)
    got, neighbours = _bn_odd_vectors(device, x, w_full, rv_dtype, relu)
    want, _ = _bn_odd_vectors("cpu", x, w_full, rv_dtype, relu)
    np.testing.assert_array_equal(neighbours, np.arange(1, 12, 2))   # not written over
    assert got[4].dtype == rv_dtype
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_relu_keeps_nan_as_the_cpu_does(device, rng, training):
    x = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan                                   # channel 0 all NaN in training
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    out = []
    for d in ("cpu", device):
        xt = to_tensor(x, d, requires_grad=True)
        y = F.batch_norm_relu(xt, to_tensor(rm, d), to_tensor(rv, d), training=training)
        y.backward(to_tensor(np.ones(x.shape), d, dtype=np.float32))
        out.append((host(y), host(xt.grad)))
    (y_cpu, g_cpu), (y_dev, g_dev) = out
    assert np.isnan(y_cpu).sum() == (36 if training else 1)
    np.testing.assert_array_equal(np.isnan(y_dev), np.isnan(y_cpu))
    np.testing.assert_allclose(y_dev, y_cpu, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(g_dev), np.isnan(g_cpu))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_momentum_none_matches_the_cpu_on_every_device(device, rng, dtype):
    xs = [rng.standard_normal((6, 3, 2, 2)) * (k + 1) + k for k in range(4)]
    stats = []
    for d in ("cpu", device):
        m = nn.BatchNorm2d(3, momentum=None).to(d)
        if dtype == np.float64:
            m = m.double()
        for x in xs:
            m(to_tensor(x, d, dtype=dtype))
        stats.append([host(t) for t in (m.running_mean, m.running_var, m.num_batches_tracked)])
    np.testing.assert_allclose(stats[0][0], np.mean([x.mean((0, 2, 3)) for x in xs], 0),
                               rtol=1e-5, atol=1e-6)
    for a, b in zip(*stats):
        np.testing.assert_allclose(b, a, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.cuda
def test_momentum_none_reads_nothing_back_and_works_in_a_cuda_graph(rng):
    from minidl.cuda_graph import GraphedStep
    xs = [rng.standard_normal((6, 3, 2, 2)).astype(np.float32) + k for k in range(5)]
    eager, graphed = nn.BatchNorm2d(3, momentum=None).to("cuda"), \
        nn.BatchNorm2d(3, momentum=None).to("cuda")
    step = GraphedStep(lambda x: graphed(x).sum(), warmup=1)
    for x in xs:
        eager(to_tensor(x, "cuda"))
        step(to_tensor(x, "cuda"))
    assert step.captures == 1
    for a, b in zip(eager.buffers(), graphed.buffers()):
        np.testing.assert_allclose(host(b), host(a), rtol=1e-6)
    assert int(host(graphed.num_batches_tracked)) == 5
