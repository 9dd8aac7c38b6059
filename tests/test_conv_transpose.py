"""conv_transpose2d and nn.ConvTranspose2d: forward vs a scatter-loop oracle and torch, float64
gradchecks over strides, paddings, output paddings, dilations, groups, bias and non-square
shapes; the adjoint identity with conv2d; bad input; the module's init and output_size."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op, host, to_tensor


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def ref_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1):
    """Straight from the definition: every input pixel scatters its kernel-weighted value to
    y[n, o, h*S - P + i*D, w*S - P + j*D]; positions outside the output are dropped."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    (oph, opw), (dh, dw) = _pair(output_padding), _pair(dilation)
    N, C, H, W = x.shape
    _, Og, KH, KW = w.shape
    Cg = C // groups
    OH = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1
    OW = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1
    y = np.zeros((N, Og * groups, OH, OW))
    for c in range(C):
        g = c // Cg
        for h in range(H):
            for ww in range(W):
                for o in range(Og):
                    for i in range(KH):
                        for j in range(KW):
                            oh, ow = h * sh - ph + i * dh, ww * sw - pw + j * dw
                            if 0 <= oh < OH and 0 <= ow < OW:
                                y[:, g * Og + o, oh, ow] += w[c, o, i, j] * x[:, c, h, ww]
    if b is not None:
        y += b[None, :, None, None]
    return y


# (N, C_in, H, W), (C_out, KH, KW), stride, padding, output_padding, dilation, groups, bias
CASES = [
    ((2, 2, 4, 5), (3, 3, 3), 1, 0, 0, 1, 1, True),            # stride 1: a flipped conv
    ((2, 2, 4, 4), (3, 3, 3), 1, 1, 0, 1, 1, False),
    ((2, 2, 3, 4), (3, 3, 3), 2, 0, 0, 1, 1, True),            # stride 2: col2im
    ((2, 2, 3, 4), (2, 3, 3), 2, 1, 1, 1, 1, False),           # output_padding 1
    ((1, 2, 3, 3), (2, 3, 2), 3, 1, 2, 1, 1, True),            # stride 3, non-square kernel
    ((2, 4, 3, 4), (6, 3, 3), 2, 1, 1, 1, 2, True),            # groups 2
    ((2, 4, 4, 3), (4, 3, 3), 1, 1, 0, 2, 2, False),           # dilation 2, groups, stride 1
    ((2, 2, 3, 4), (3, 3, 3), 1, 0, 1, 2, 1, True),            # output_padding >= stride
    ((1, 2, 3, 3), (2, 3, 3), 2, 1, 1, 2, 1, False),           # stride 2, dilation 2
    ((2, 2, 3, 3), (2, 2, 3), (2, 1), (1, 0), (1, 0), (1, 2), 1, True),   # per-axis values
    ((2, 2, 4, 4), (3, 2, 2), 1, 2, 0, 1, 1, False),           # padding past the kernel reach
    ((2, 3, 3, 3), (2, 1, 1), 2, 0, 1, 1, 1, True),            # 1x1 kernel, stride 2
    ((2, 3, 3, 4), (4, 1, 1), 1, 0, 0, 1, 1, True),            # 1x1 kernel, stride 1
    ((2, 3, 3, 3), (3, 3, 3), 2, 1, 1, 1, 3, True),            # depthwise
]


def _args(case, rng):
    (N, C, H, W), (O, KH, KW), s, p, op, d, g, bias = case
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((C, O // g, KH, KW))]
    if bias:
        arrays.append(rng.standard_normal(O))
    return arrays, dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose2d_matches_loops_and_gradchecks(device, rng, case):
    arrays, kw = _args(case, rng)

    def fn(x, w, b=None):
        return F.conv_transpose2d(x, w, b, **kw)

    def ref(x, w, b=None):
        return ref_conv_transpose2d(x, w, b, **kw)
    check_op(fn, arrays, ref, device)


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose2d_matches_torch(rng, case):
    """Forward and all three gradients against torch, for one random upstream gradient."""
    torch = pytest.importorskip("torch")
    arrays, kw = _args(case, rng)
    ins = [minidl.tensor(a, requires_grad=True) for a in arrays]
    y = F.conv_transpose2d(*ins, **kw)
    tins = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch.nn.functional.conv_transpose2d(*tins, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(ty.shape)
    y.backward(minidl.tensor(gy))
    ty.backward(torch.tensor(gy))
    for a, t in zip(ins, tins):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(device, rng, case):
    """<conv2d(x, W), y> == <x, conv_transpose2d(y, W)> for the same stride, padding,
    dilation and groups (x sized as the transposed convolution's output)."""
    (N, C, H, W), (O, KH, KW), s, p, op, d, g, _ = case
    w = rng.standard_normal((C, O // g, KH, KW))       # conv2d reads it as (C_out=C, C_in/g)
    y = rng.standard_normal((N, C, H, W))
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    ty = F.conv_transpose2d(to_tensor(y, device), to_tensor(w, device), output_padding=op, **kw)
    x = rng.standard_normal(ty.shape)
    cx = host(F.conv2d(to_tensor(x, device), to_tensor(w, device), **kw))
    # output_padding >= stride (allowed below the dilation) leaves conv2d a grid larger than
    # y; the positions past it are the ones conv_transpose2d never reads from
    (oph, opw), (sh, sw) = _pair(op), _pair(s)
    assert cx.shape == (N, C, H + oph // sh, W + opw // sw)
    cx = cx[:, :, :H, :W]
    np.testing.assert_allclose((cx * y).sum(), (x * host(ty)).sum(), rtol=1e-10)


@pytest.mark.parametrize("threads_on", [False, True])
def test_conv_transpose2d_strided_matches_loops_on_random_geometries(rng, request, threads_on):
    """Strided transposed convolutions (whose forward is conv2d's phase-grid input gradient
    on the host), output paddings up to below max(stride, dilation) included."""
    if threads_on:
        request.getfixturevalue("threaded")
    checked = 0
    while checked < 40:
        G = int(rng.choice([1, 2]))
        C, Og = G * int(rng.integers(1, 3)), int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        s = tuple(int(v) for v in rng.integers(2, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(v) for v in rng.integers(0, 3, 2))
        op = tuple(int(rng.integers(0, max(a, b))) for a, b in zip(s, d))
        H, W = (int(v) for v in rng.integers(1, 6, 2))
        if any((n - 1) * a - 2 * q + e * (kk - 1) + o + 1 < 1 for n, a, q, e, kk, o in
               zip((H, W), s, p, d, k, op)):
            continue                                # no output: an error, tested elsewhere
        x, w = rng.standard_normal((2, C, H, W)), rng.standard_normal((C, Og) + k)
        kw = dict(stride=s, padding=p, output_padding=op, dilation=d, groups=G)
        y = F.conv_transpose2d(minidl.tensor(x), minidl.tensor(w), **kw)
        np.testing.assert_allclose(y.numpy(), ref_conv_transpose2d(x, w, None, **kw),
                                   rtol=1e-12, atol=1e-12, err_msg=str((x.shape, k, kw)))
        checked += 1


def test_conv_transpose2d_float32_and_chained_gradcheck(device, rng):
    """float32 close to float64; a conv2d followed by its transpose (the second sees the
    first's channel-major output) gradchecks as one function."""
    x, w = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 2, 3, 3))
    y = F.conv_transpose2d(to_tensor(x, device, dtype=np.float32),
                           to_tensor(w, device, dtype=np.float32), stride=2, padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(host(y), ref_conv_transpose2d(x, w, None, 2, 1), rtol=1e-4,
                               atol=1e-4)
    x, w1 = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((3, 2, 3, 3))
    ins = [to_tensor(a, device, requires_grad=True) for a in (x, w1, w)]
    assert minidl.gradcheck(
        lambda a, b, c: F.conv_transpose2d(F.conv2d(a, b, padding=1), c, stride=2,
                                           output_padding=1), ins)


def test_conv_transpose2d_bad_input(rng):
    x = minidl.tensor(rng.standard_normal((1, 4, 3, 3)))
    w = minidl.tensor(rng.standard_normal((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="conv_transpose2d: 'output_padding' must be smaller "
                                         "than either stride or dilation"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, w, output_padding=1)             # stride 1, dilation 1
    with pytest.raises(ValueError, match="input has 4 channels, weight expects 3"):
        F.conv_transpose2d(x, minidl.tensor(rng.standard_normal((3, 2, 3, 3))))
    with pytest.raises(ValueError, match="divisible by groups"):
        F.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match=r"'bias' must have shape \(4,\)"):
        F.conv_transpose2d(x, w, minidl.tensor(np.zeros(2)), groups=2)
    with pytest.raises(ValueError, match="output size .* is not positive"):
        F.conv_transpose2d(x, w, padding=3)
    with pytest.raises(ValueError, match="'input' must be 4-D"):
        F.conv_transpose2d(minidl.tensor(np.zeros((3, 3))), w)
    with pytest.raises(TypeError, match="same dtype"):
        F.conv_transpose2d(x.float(), w)
    with pytest.raises(ValueError, match="'stride' must be positive"):
        F.conv_transpose2d(x, w, stride=0)


# ---------------------------------------------------------------------------------------------
# nn.ConvTranspose2d

def test_module_shapes_init_and_forward(device):
    m = nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1, output_padding=1, groups=2)
    assert m.weight.shape == (4, 3, 3, 2) and m.bias.shape == (6,)
    bound = 1.0 / math.sqrt(3 * 3 * 2)                  # fan_in = C_out/groups * KH * KW
    for p in (m.weight, m.bias):
        a = p.numpy()
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.7 * bound and a.std() > 0
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    m.to(device)
    x = np.linspace(-1, 1, 2 * 4 * 3 * 4).reshape(2, 4, 3, 4)
    y = m(to_tensor(x, device, dtype=np.float32))
    assert y.shape == (2, 6, 6, 7) and y.dtype == np.float32
    expected = ref_conv_transpose2d(x, m.weight.numpy(), m.bias.numpy(), 2, 1, 1, 2)
    np.testing.assert_allclose(host(y), expected, rtol=1e-5, atol=1e-5)
    assert "output_padding=(1, 1)" in repr(m) and "groups=2" in repr(m)
    assert nn.ConvTranspose2d(3, 8, 1, bias=False).bias is None


def test_module_output_size_matches_torch(rng):
    torch = pytest.importorskip("torch")
    m = nn.ConvTranspose2d(2, 3, 3, stride=(3, 2), padding=1, dtype=np.float64)
    t = torch.nn.ConvTranspose2d(2, 3, 3, stride=(3, 2), padding=1).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.numpy()))
        t.bias.copy_(torch.tensor(m.bias.numpy()))
    x = rng.standard_normal((1, 2, 3, 4))
    for size in [(7, 7), (9, 8), (1, 2, 8, 8)]:
        y = m(minidl.tensor(x), output_size=size)
        ty = t(torch.tensor(x), output_size=list(size))
        assert y.shape == tuple(ty.shape)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="ConvTranspose2d: requested output size"):
        m(minidl.tensor(x), output_size=(10, 7))


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="ConvTranspose2d: out_channels .* divisible"):
        nn.ConvTranspose2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="ConvTranspose2d: 'output_padding'"):
        nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="ConvTranspose2d: 'in_channels' must be a positive"):
        nn.ConvTranspose2d(0, 4, 3)
