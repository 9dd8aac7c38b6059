"""conv2d and nn.Conv2d: forward vs a direct-loop oracle, float64 gradchecks over strides,
paddings, dilations, groups, bias, non-square shapes and batch 1; the im2col/col2im kernels;
dtype; torch parity (when installed); bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import kernels
from minidl.kernels import threads
from tests import reference as R
from tests.helpers import check_op, host, to_tensor

# (N, C, H, W), (O, KH, KW), stride, padding, dilation, groups, bias
CASES = [
    ((2, 3, 5, 5), (4, 3, 3), 1, 0, 1, 1, True),
    ((2, 3, 5, 6), (4, 3, 3), 1, 1, 1, 1, False),            # stride-1 grad via flipped conv
    ((1, 2, 6, 5), (3, 2, 3), 2, 1, 1, 1, True),              # batch 1, non-square kernel
    ((2, 2, 7, 6), (2, 3, 3), 2, 2, 1, 1, False),
    ((2, 2, 7, 7), (3, 3, 3), 1, 2, 2, 1, True),              # dilation 2
    ((2, 2, 7, 8), (2, 3, 2), (2, 1), (1, 2), (2, 1), 1, False),
    ((2, 4, 5, 5), (6, 3, 3), 1, 1, 1, 2, True),              # groups 2
    ((2, 4, 6, 5), (4, 3, 3), 2, 1, 1, 4, False),             # depthwise, stride 2
    ((2, 4, 5, 6), (8, 3, 3), 1, 1, 2, 4, True),              # depthwise multiplier 2, dil 2
    ((2, 3, 5, 4), (2, 1, 1), 1, 0, 1, 1, True),              # 1x1: no im2col
    ((2, 4, 6, 7), (6, 1, 1), 2, 0, 1, 2, False),             # 1x1 stride 2, groups
    ((2, 2, 4, 5), (3, 3, 3), 1, 3, 1, 1, True),              # padding > kernel reach: col2im
    ((1, 1, 3, 3), (1, 3, 3), 1, 0, 1, 1, False),             # 1x1 output
    ((2, 2, 6, 7), (3, 2, 3), 1, (1, 0), (1, 2), 1, True),    # row path, not "same" padded
    ((2, 3, 7, 6), (2, 5, 3), 1, (2, 2), (1, 2), 1, False),   # row path, "same", 2-col shifts
    ((2, 1, 5, 5), (6, 3, 3), 1, 1, 1, 1, True),              # few inputs: im2col, stride 1
    ((2, 4, 4, 3), (4, 3, 3), 1, 4, 4, 1, False),             # "same", shifts past the width
    ((1, 4, 3, 2), (3, 7, 7), 1, 3, 1, 1, True),              # ... by up to 1.5 widths
]


def _args(case, rng):
    (N, C, H, W), (O, KH, KW), s, p, d, g, bias = case
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C // g, KH, KW))]
    if bias:
        arrays.append(rng.standard_normal(O))
    return arrays, dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_loops_and_gradchecks(device, rng, case):
    arrays, kw = _args(case, rng)

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, **kw)

    def ref(x, w, b=None):
        return R.conv2d(x, w, b, **kw)
    check_op(fn, arrays, ref, device)


def test_conv2d_input_layouts(device, rng):
    """NCHW-contiguous, channel-major views and sliced (strided) inputs give the same result."""
    x = rng.standard_normal((3, 2, 9, 8))
    w = rng.standard_normal((4, 2, 3, 3))
    expected = R.conv2d(x[:, :, ::2, 1:], w, None, 1, 1)
    variants = [np.ascontiguousarray(x[:, :, ::2, 1:]),
                np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)[:, :, ::2, 1:]]
    for arr in variants:
        t = to_tensor(arr, device)
        if device == "cpu":
            t.data = arr            # keep the strides as they are
        np.testing.assert_allclose(host(F.conv2d(t, to_tensor(w, device), padding=1)),
                                   expected, atol=1e-12)


def test_conv2d_chained_layers_gradcheck(rng):
    """Two convs in a row (so the second sees the channel-major output of the first, and
    scratch buffers are reused between differently shaped calls)."""
    x = rng.standard_normal((2, 3, 6, 6))
    w1 = rng.standard_normal((4, 3, 3, 3))
    w2 = rng.standard_normal((2, 4, 3, 3))
    ins = [minidl.tensor(a, requires_grad=True) for a in (x, w1, w2)]
    assert minidl.gradcheck(lambda a, b, c: F.conv2d(F.conv2d(a, b, padding=1), c, stride=2),
                            ins)


def test_conv2d_outputs_do_not_share_scratch(rng):
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)))
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)))
    y1 = F.conv2d(x, w, padding=1)
    before = y1.numpy()
    F.conv2d(minidl.tensor(rng.standard_normal((2, 3, 6, 6))), w, padding=1)
    F.conv2d(minidl.tensor(rng.standard_normal((1, 3, 9, 9))), w)
    np.testing.assert_array_equal(y1.numpy(), before)


def test_conv2d_float32_close_to_float64(device, rng):
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((5, 3, 3, 3))
    y = F.conv2d(to_tensor(x, device, dtype=np.float32), to_tensor(w, device, dtype=np.float32),
                 stride=2, padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(host(y), R.conv2d(x, w, None, 2, 1), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# kernels

KERNEL_CASES = [((2, 3, 5, 6), (3, 2), (1, 1), (1, 0), (1, 1)),
                ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), (2, 2)),
                ((2, 1, 6, 5), (2, 3), (2, 1), (0, 2), (1, 2))]


@pytest.mark.parametrize("shape,k,s,p,d", KERNEL_CASES)
def test_im2col_matches_definition_and_col2im_is_its_adjoint(rng, shape, k, s, p, d):
    x = rng.standard_normal(shape)
    col = kernels.im2col(x, k, s, p, d)
    N, C, H, W = shape
    OH, OW = col.shape[4:]
    xpad = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    for c in range(C):
        for i in range(k[0]):
            for j in range(k[1]):
                for oh in range(OH):
                    for ow in range(OW):
                        np.testing.assert_array_equal(
                            col[c, i, j, :, oh, ow],
                            xpad[:, c, oh * s[0] + i * d[0], ow * s[1] + j * d[1]])
    g = rng.standard_normal(col.shape)
    back = kernels.col2im(g, shape, s, p, d)
    assert back.shape == shape
    np.testing.assert_allclose((col * g).sum(), (x * back).sum(), rtol=1e-12)


@pytest.mark.parametrize("shape,k,p,d", [((2, 3, 5, 6), (3, 3), (1, 1), (1, 1)),
                                         ((2, 2, 6, 7), (3, 3), (1, 2), (1, 2)),
                                         ((2, 2, 5, 5), (2, 2), (0, 1), (1, 1)),
                                         ((1, 2, 4, 6), (5, 5), (2, 1), (1, 1)),
                                         ((2, 1, 3, 4), (3, 3), (0, 0), (2, 1)),
                                         ((2, 2, 3, 3), (3, 3), (1, 5), (1, 5)),
                                         ((2, 2, 3, 2), (7, 7), (0, 3), (1, 1)),
                                         ((3, 2, 4, 5), (3, 3), (2, 1), (1, 1)),
                                         ((2, 2, 4, 5), (2, 3), (1, 1), (1, 1))])
def test_row_columns_match_definition(rng, shape, k, p, d):
    """U[j, c, (lead + n*Hr + r)*OW + ow] = xpad[n, c, r + lead, ow + j*DW] everywhere, padding
    zeros included, after ``lead`` zero rows; lead is the top padding where the kernel reaches
    across it (each image's grid then starts below it, the rows before standing in), else 0
    (the "same"-padded cases build shifted planes by moving one plane; the others copy each)."""
    x = rng.standard_normal(shape)
    x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)   # CNHW memory
    out = np.full(kernels.row_unfold_shape(shape, k, p, d), np.nan)
    U = kernels.unfold_rows(x, k, p, d, out=out)
    assert U is out
    N, C, H, W = shape
    (kh, kw), Hp = k, H + 2 * p[0]
    OW = W + 2 * p[1] - d[1] * (kw - 1)
    lead = p[0] if p[0] <= d[0] * (kh - 1) else 0
    assert kernels.row_geometry(shape, k, p, d) == (lead, Hp - lead, OW)
    assert U.shape == (kw, C, (lead + N * (Hp - lead)) * OW)
    xpad = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    np.testing.assert_array_equal(U[:, :, :lead * OW], 0)
    grid = U[:, :, lead * OW:].reshape(kw, C, N, Hp - lead, OW)
    np.testing.assert_array_equal(grid, kernels.row_grid(U, shape, k, p, d))
    for j in range(kw):
        np.testing.assert_array_equal(grid[j], xpad[:, :, lead:, j * d[1]:j * d[1] + OW]
                                      .transpose(1, 0, 2, 3))


def test_row_path_threads_share_no_rows(rng, monkeypatch, threaded):
    """On 3 threads, each with a part of the batch, the row path's output and gradients equal
    the one-thread result bit for bit (forward and input gradient) and to rounding (weight
    gradient, summed in parts): each part takes the products of the zero rows before its
    first image from zeros of its own, into a products buffer of its own."""
    x = rng.standard_normal((7, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((7, 4, 6, 5))

    def run():
        ts = [minidl.tensor(a, requires_grad=True) for a in (x, w)]
        y = F.conv2d(*ts, padding=1)
        y.backward(minidl.tensor(gy))
        return y.numpy(), ts[0].grad.numpy(), ts[1].grad.numpy()

    many = run()
    monkeypatch.setattr(threads, "_MIN_ITEMS", 1 << 60)            # one part: no threads
    one = run()
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_array_equal(many[1], one[1])
    np.testing.assert_allclose(many[2], one[2], rtol=1e-13)
    np.testing.assert_allclose(one[0], R.conv2d(x, w, None, 1, 1, 1, 1), atol=1e-12)


def test_row_path_parts_never_read_the_rows_before_them(rng, monkeypatch):
    """Each thread's part of the row path unfolds its images after ``lead`` rows that are the
    previous part's last rows: that part writes zeros there in the end, but not at every moment
    (its shifted planes pass through them). So no part may read them. Here the parts run one
    after the other, and each spoils those rows with NaN once it has unfolded its images (the
    previous part, already done, read them as zeros): the output is still exact."""
    x = rng.standard_normal((6, 3, 5, 4))
    w = rng.standard_normal((4, 3, 3, 3))
    real = kernels.unfold_rows

    def unfold_then_spoil(x, kernel_size, padding, dilation, out=None):
        U = real(x, kernel_size, padding, dilation, out=out)
        lead, _, OW = kernels.row_geometry(x.shape, kernel_size, padding, dilation)
        U[:, :, :lead * OW] = np.nan
        return U

    def parts_in_turn(fn, n, items=None):
        for lo, hi in threads.split(n, 3):
            fn(lo, hi)

    monkeypatch.setattr(kernels, "unfold_rows", unfold_then_spoil)
    monkeypatch.setattr(threads, "parallel", parts_in_turn)
    y = F.conv2d(minidl.tensor(x), minidl.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(y, R.conv2d(x, w, None, 1, 1, 1, 1), atol=1e-12)


def test_importing_minidl_does_not_import_cupy():
    import subprocess
    import sys
    code = ("import sys, minidl, minidl.nn, minidl.kernels.cuda; "
            "sys.exit(1 if 'cupy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.cuda
@pytest.mark.parametrize("shape,k,s,p,d", KERNEL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_kernels_agree_with_reference(rng, shape, k, s, p, d, dtype):
    import cupy as cp
    from minidl.kernels import cuda
    x = rng.standard_normal(shape).astype(dtype)
    xg = cp.asarray(np.ascontiguousarray(x.transpose(1, 0, 2, 3))).transpose(1, 0, 2, 3)
    col = kernels.reference.im2col(x, k, s, p, d)
    np.testing.assert_array_equal(cp.asnumpy(cuda.im2col(xg, k, s, p, d)), col)
    g = rng.standard_normal(col.shape).astype(dtype)
    np.testing.assert_allclose(cp.asnumpy(cuda.col2im(cp.asarray(g), shape, s, p, d)),
                               kernels.reference.col2im(g, shape, s, p, d), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# nn.Conv2d

def test_module_shapes_init_and_forward(device):
    m = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    assert m.weight.shape == (6, 2, 3, 2) and m.bias.shape == (6,)
    bound = 1.0 / np.sqrt(2 * 3 * 2)
    for p in (m.weight, m.bias):
        a = p.numpy()
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.5 * bound and a.std() > 0
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    m.to(device)
    x = to_tensor(np.ones((2, 4, 7, 6), np.float32), device)
    y = m(x)
    expected = R.conv2d(np.ones((2, 4, 7, 6)), m.weight.numpy(), m.bias.numpy(), 2, 1,
                        groups=2)
    np.testing.assert_allclose(host(y), expected, rtol=1e-5, atol=1e-5)
    assert "groups=2" in repr(m)
    assert nn.Conv2d(3, 8, 1, bias=False).bias is None


def test_module_init_is_seeded():
    minidl.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    minidl.manual_seed(7)
    np.testing.assert_array_equal(a, nn.Conv2d(3, 4, 3).weight.numpy())


def test_torch_parity(rng):
    torch = pytest.importorskip("torch")
    for case in (CASES[4], CASES[5], CASES[7], CASES[10]):
        arrays, kw = _args(case, rng)
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        ms = [minidl.tensor(a, requires_grad=True) for a in arrays]
        yt = torch.nn.functional.conv2d(*ts, **kw)
        ym = F.conv2d(*ms, **kw)
        np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), atol=1e-12)
        g = rng.standard_normal(yt.shape)
        yt.backward(torch.tensor(g))
        ym.backward(minidl.tensor(g))
        for t, m in zip(ts, ms):
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), atol=1e-11)


# ---------------------------------------------------------------------------------------------
# bad input

def _t(*shape):
    return minidl.zeros(*shape)


@pytest.mark.parametrize("x,w,kw,exc,match", [
    (_t(2, 3, 8, 8), _t(32, 16, 3, 3), {}, ValueError,
     r"conv2d: input has 3 channels, weight expects 16 \(weight \(32, 16, 3, 3\), groups=1\)"),
    (_t(2, 6, 8, 8), _t(4, 2, 3, 3), {"groups": 4}, ValueError,
     r"conv2d: input channels \(6\) must be divisible by groups \(4\)"),
    (_t(2, 4, 8, 8), _t(6, 1, 3, 3), {"groups": 4}, ValueError,
     r"conv2d: output channels \(6.*divisible by groups \(4\)"),
    (_t(2, 3, 4, 4), _t(2, 3, 7, 3), {"padding": 1}, ValueError,
     r"conv2d: kernel height 7 .* larger than the padded input height 6"),
    (_t(2, 3, 6, 4), _t(2, 3, 3, 3), {"dilation": 2}, ValueError,
     r"conv2d: kernel width 3 \(dilation 2, spanning 5\) is larger than the padded input"),
    (_t(8, 8), _t(2, 3, 3, 3), {}, ValueError, r"conv2d: 'input' must be 4-D \(N, C, H, W\) or "
     r"3-D \(C, H, W\), got shape \(8, 8\)"),
    (_t(2, 3, 8, 8), _t(2, 3, 3), {}, ValueError, r"conv2d: 'weight' must be 4-D"),
    (_t(2, 3, 8, 8), _t(2, 3, 3, 3), {"stride": 0}, ValueError,
     r"conv2d: 'stride' must be positive, got 0"),
    (_t(2, 3, 8, 8), _t(2, 3, 3, 3), {"dilation": (1, -1)}, ValueError,
     r"conv2d: 'dilation' must be positive"),
    (_t(2, 3, 8, 8), _t(2, 3, 3, 3), {"padding": -1}, ValueError,
     r"conv2d: 'padding' must be non-negative, got -1"),
    (_t(2, 3, 8, 8), _t(2, 3, 3, 3), {"stride": 1.5}, TypeError,
     r"conv2d: 'stride' must be an int or a pair of ints"),
    (_t(2, 3, 8, 8), _t(2, 3, 3, 3), {"bias": _t(3)}, ValueError,
     r"conv2d: 'bias' must have shape \(2,\)"),
    (_t(2, 3, 8, 8), _t(2, 3, 3, 3), {"groups": 0}, ValueError,
     r"conv2d: 'groups' must be a positive int"),
    (_t(2, 3, 8, 8), _t(0, 3, 3, 3), {}, ValueError,
     r"conv2d: weight \(0, 3, 3, 3\) must have at least one output and one input channel"),
    (_t(2, 0, 8, 8), _t(2, 0, 3, 3), {}, ValueError, r"at least one output and one input"),
    (_t(2, 3, 8, 8), minidl.zeros(2, 3, 3, 3, dtype=np.float64), {}, TypeError,
     r"conv2d: input and weight must have the same dtype"),
    (np.zeros((2, 3, 8, 8)), _t(2, 3, 3, 3), {}, TypeError,
     r"conv2d: argument 'input' must be a Tensor"),
])
def test_conv2d_bad_input(x, w, kw, exc, match):
    with pytest.raises(exc, match=match):
        F.conv2d(x, w, **kw)


@pytest.mark.parametrize("args,kw,match", [
    ((3, 8, 3), {"groups": 2}, r"Conv2d: in_channels \(3\) must be divisible by groups \(2\)"),
    ((4, 6, 3), {"groups": 4}, r"Conv2d: out_channels \(6\) must be divisible by groups \(4\)"),
    ((0, 6, 3), {}, r"Conv2d: 'in_channels' must be a positive int"),
    ((3, 6, 0), {}, r"Conv2d: 'kernel_size' must be positive"),
    ((3, 6, 3), {"stride": 0}, r"Conv2d: 'stride' must be positive"),
    ((3, 6, 3), {"padding": -2}, r"Conv2d: 'padding' must be non-negative"),
    ((3, 6, 3), {"dilation": 0}, r"Conv2d: 'dilation' must be positive"),
])
def test_module_bad_arguments(args, kw, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(*args, **kw)


def test_module_channel_mismatch_at_forward():
    with pytest.raises(ValueError, match=r"conv2d: input has 4 channels, weight expects 3"):
        nn.Conv2d(3, 8, 3)(_t(1, 4, 8, 8))


def test_conv2d_takes_numpy_integer_groups(rng):
    x = minidl.tensor(rng.standard_normal((1, 4, 5, 5)))
    w = minidl.tensor(rng.standard_normal((4, 2, 3, 3)))
    np.testing.assert_array_equal(F.conv2d(x, w, groups=np.int64(2)).numpy(),
                                  F.conv2d(x, w, groups=2).numpy())
