"""interpolate ('nearest', 'bilinear' with align_corners False/True) and the Upsample layers:
forward vs per-pixel loop oracles and torch, float64 gradchecks (the deterministic
scatter-add backward), the broadcast fast path of integer nearest factors, bad input."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.functional import upsample
from tests.helpers import check_op, host, to_tensor


def _out_size(H, W, size, scale_factor):
    if size is not None:
        return (size, size) if isinstance(size, int) else tuple(size)
    sh, sw = scale_factor if isinstance(scale_factor, tuple) else (scale_factor,) * 2
    return math.floor(H * sh), math.floor(W * sw)


def _scales(H, W, OH, OW, scale_factor):
    """The sampling step per axis: 1/scale_factor when one is given, else in/out."""
    if scale_factor is None:
        return H / OH, W / OW
    sh, sw = scale_factor if isinstance(scale_factor, tuple) else (scale_factor,) * 2
    return 1.0 / sh, 1.0 / sw


def ref_nearest(x, size=None, scale_factor=None):
    """y[n, c, oh, ow] = x[n, c, floor(oh * sH), floor(ow * sW)], PyTorch's legacy nearest
    (the products in float32, as its kernel computes them)."""
    N, C, H, W = x.shape
    OH, OW = _out_size(H, W, size, scale_factor)
    sh, sw = (np.float32(s) for s in _scales(H, W, OH, OW, scale_factor))
    y = np.empty((N, C, OH, OW))
    for oh in range(OH):
        h = min(int(np.floor(np.float32(oh) * sh)), H - 1)
        for ow in range(OW):
            w = min(int(np.floor(np.float32(ow) * sw)), W - 1)
            y[:, :, oh, ow] = x[:, :, h, w]
    return y


def _source(dst, n_in, n_out, step, align_corners):
    if align_corners:
        return dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return max((dst + 0.5) * step - 0.5, 0.0)


def ref_bilinear(x, size=None, scale_factor=None, align_corners=False):
    """Per output pixel: the source point, its four neighbours (clamped to the image) and
    the bilinear blend of their values."""
    N, C, H, W = x.shape
    OH, OW = _out_size(H, W, size, scale_factor)
    sh, sw = _scales(H, W, OH, OW, scale_factor)
    y = np.empty((N, C, OH, OW))
    for oh in range(OH):
        fh = _source(oh, H, OH, sh, align_corners)
        h0 = min(int(math.floor(fh)), H - 1)
        h1, a = min(h0 + 1, H - 1), fh - h0
        for ow in range(OW):
            fw = _source(ow, W, OW, sw, align_corners)
            w0 = min(int(math.floor(fw)), W - 1)
            w1, b = min(w0 + 1, W - 1), fw - w0
            y[:, :, oh, ow] = ((1 - a) * (1 - b) * x[:, :, h0, w0] + (1 - a) * b * x[:, :, h0, w1]
                               + a * (1 - b) * x[:, :, h1, w0] + a * b * x[:, :, h1, w1])
    return y


# (N, C, H, W), size, scale_factor
RESIZES = [
    ((2, 2, 3, 4), None, 2),                 # integer factors: the broadcast path
    ((1, 2, 3, 2), None, (3, 2)),
    ((2, 1, 4, 5), None, 1.5),               # fractional factor
    ((1, 2, 5, 7), (3, 2), None),            # downsampling: some inputs are never read
    ((2, 1, 3, 4), (7, 11), None),
    ((1, 1, 4, 3), (4, 5), None),            # one axis unchanged
    ((1, 2, 3, 4), (6, 5), None),            # one axis doubled, the other fractional
    ((1, 2, 5, 4), None, (0.5, 1.75)),
    ((1, 1, 3, 3), (1, 1), None),            # one output pixel
]


@pytest.mark.parametrize("shape,size,scale", RESIZES)
def test_nearest_matches_loops_and_gradchecks(device, rng, shape, size, scale):
    check_op(lambda x: F.interpolate(x, size, scale), [rng.standard_normal(shape)],
             lambda x: ref_nearest(x, size, scale), device)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape,size,scale", RESIZES)
def test_bilinear_matches_loops_and_gradchecks(device, rng, shape, size, scale, align_corners):
    check_op(lambda x: F.interpolate(x, size, scale, "bilinear", align_corners),
             [rng.standard_normal(shape)],
             lambda x: ref_bilinear(x, size, scale, align_corners), device,
             fwd_atol=1e-12, fwd_rtol=1e-12)


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("bilinear", False),
                                                ("bilinear", True)])
@pytest.mark.parametrize("shape,size,scale", RESIZES + [((1, 2, 5, 5), None, 1.7),
                                                        ((1, 1, 9, 10), None, 0.3),
                                                        ((1, 1, 5, 6), (10, 13), None)])
def test_matches_torch(rng, shape, size, scale, mode, align_corners):
    """Forward and input gradient against torch, for one random upstream gradient."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    t = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(t, size, scale, mode, align_corners)
    a = minidl.tensor(x, requires_grad=True)
    y = F.interpolate(a, size, scale, mode, align_corners)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(gy))
    y.backward(minidl.tensor(gy))
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_recompute_scale_factor_matches_torch(rng, mode):
    """recompute_scale_factor=True samples with H/OH instead of 1/scale_factor (they differ
    for 5 * 1.7 -> 8)."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 1, 5, 5))
    outs = []
    for recompute in (None, True):
        y = F.interpolate(minidl.tensor(x), scale_factor=1.7, mode=mode,
                          recompute_scale_factor=recompute).numpy()
        ty = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=1.7, mode=mode,
                                             recompute_scale_factor=recompute).numpy()
        np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
        outs.append(y)
    assert not np.allclose(outs[0], outs[1])


def test_integer_nearest_takes_no_gather(device, rng, monkeypatch):
    """Integer factors: y is x broadcast and reshaped, gx a sum over the repeats (neither
    calls the gather of the general path)."""
    def no_gather(*args):
        raise AssertionError("gathered")
    monkeypatch.setattr(upsample, "_apply", no_gather)
    x = rng.standard_normal((2, 3, 3, 4))
    for kw in [dict(scale_factor=2), dict(scale_factor=(3, 1)), dict(size=(6, 12))]:
        t = to_tensor(x, device, requires_grad=True)
        y = F.interpolate(t, **kw)
        kh, kw_ = y.shape[2] // 3, y.shape[3] // 4
        np.testing.assert_array_equal(host(y), x.repeat(kh, axis=2).repeat(kw_, axis=3))
        gy = rng.standard_normal(y.shape)
        y.backward(to_tensor(gy, device))
        np.testing.assert_allclose(host(t.grad),
                                   gy.reshape(2, 3, 3, kh, 4, kw_).sum(axis=(3, 5)),
                                   rtol=1e-12, atol=1e-12)
    with pytest.raises(AssertionError, match="gathered"):       # the general path does
        F.interpolate(to_tensor(x, device), scale_factor=1.5)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_backward_is_deterministic_and_float32(device, rng, mode):
    x = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    gy = rng.standard_normal((2, 2, 7, 9)).astype(np.float32)
    grads = []
    for _ in range(2):
        t = to_tensor(x, device, requires_grad=True)
        y = F.interpolate(t, size=(7, 9), mode=mode)
        assert y.dtype == np.float32
        y.backward(to_tensor(gy, device))
        assert t.grad.dtype == np.float32
        grads.append(host(t.grad))
    np.testing.assert_array_equal(grads[0], grads[1])
    ref = ref_nearest if mode == "nearest" else ref_bilinear
    np.testing.assert_allclose(host(y), ref(x.astype(np.float64), size=(7, 9)), rtol=1e-5,
                               atol=1e-5)


def test_bad_input(rng):
    x = minidl.tensor(rng.standard_normal((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="interpolate: exactly one of 'size' and "
                                         "'scale_factor'"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="exactly one of"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="'align_corners' can only be set with an "
                                         "interpolating mode"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="mode 'bicubic' is not supported"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="'mode' must be one of"):
        F.interpolate(x, scale_factor=2, mode="cubic")
    with pytest.raises(ValueError, match="'input' must be 4-D"):
        F.interpolate(minidl.tensor(np.zeros((2, 4, 4))), scale_factor=2)
    with pytest.raises(ValueError, match="'scale_factor' must be positive"):
        F.interpolate(x, scale_factor=-2)
    with pytest.raises(ValueError, match=r"output size \(0, 0\)"):
        F.interpolate(x, scale_factor=0.2)
    with pytest.raises(TypeError, match="'size' must be an int or a pair of ints"):
        F.interpolate(x, size=(2, 3, 4))
    with pytest.raises(TypeError, match="'size' must be"):
        F.interpolate(x, size=2.5)
    with pytest.raises(TypeError, match="floating-point"):
        F.interpolate(minidl.tensor(np.zeros((1, 1, 2, 2), np.int64)), scale_factor=2)
    with pytest.raises(ValueError, match="antialias"):
        F.interpolate(x, size=2, mode="bilinear", antialias=True)
    with pytest.raises(ValueError, match="recompute_scale_factor"):
        F.interpolate(x, size=2, recompute_scale_factor=True)
    assert F.interpolate(x, size=3, recompute_scale_factor=False).shape[2:] == (3, 3)  # torch


# ---------------------------------------------------------------------------------------------
# layers

def test_layers_match_functional_and_torch(device, rng):
    x = rng.standard_normal((1, 2, 3, 4))
    t = to_tensor(x, device)
    cases = [(nn.Upsample(scale_factor=2), ref_nearest(x, scale_factor=2)),
             (nn.Upsample(size=(5, 7), mode="bilinear"), ref_bilinear(x, (5, 7))),
             (nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True),
              ref_bilinear(x, None, 1.5, True)),
             (nn.UpsamplingNearest2d(size=5), ref_nearest(x, 5)),
             (nn.UpsamplingBilinear2d(scale_factor=2), ref_bilinear(x, None, 2, True))]
    for m, expected in cases:
        np.testing.assert_allclose(host(m(t)), expected, rtol=1e-12, atol=1e-12)
        assert list(m.parameters()) == []
    assert "mode='bilinear', align_corners=True" in repr(cases[2][0])


def test_layers_match_torch_modules(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 2, 3, 4))
    pairs = [(nn.UpsamplingNearest2d(scale_factor=(2, 1.5)),
              torch.nn.UpsamplingNearest2d(scale_factor=(2, 1.5))),
             (nn.UpsamplingBilinear2d(size=(5, 6)), torch.nn.UpsamplingBilinear2d(size=(5, 6))),
             (nn.Upsample(scale_factor=2.5, mode="bilinear"),
              torch.nn.Upsample(scale_factor=2.5, mode="bilinear"))]
    for m, tm in pairs:
        np.testing.assert_allclose(m(minidl.tensor(x)).numpy(), tm(torch.tensor(x)).numpy(),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.cuda
def test_interpolate_in_a_cuda_graph_step_replays_the_eager_results(rng):
    """A captured step cannot copy host data to the device: the index maps the warm-up call
    copied are reused by the capture, and the replays equal eager steps; sizes the warm-up
    never saw are refused with minidl's error, not the capture's."""
    from minidl.cuda_graph import GraphedStep
    x = to_tensor(rng.standard_normal((2, 3, 5, 4)), "cuda", requires_grad=True)

    def step(x):
        x.grad = None
        y = F.interpolate(x, size=(7, 6), mode="bilinear")
        loss = (y * y).sum()
        loss.backward()
        return loss
    want = [step(x).item(), host(x.grad)]
    graphed = GraphedStep(step, warmup=1)
    for _ in range(3):
        got = graphed(x).item()
        assert got == pytest.approx(want[0], rel=1e-12)
        np.testing.assert_allclose(host(x.grad), want[1], rtol=1e-12)
    assert graphed.captures == 1
    new_sizes = GraphedStep(lambda t: F.interpolate(t, size=(9, 3), mode="bilinear").sum(),
                            warmup=1)
    new_sizes(x.detach())                 # the warm-up call
    upsample._DEVICE_MAPS.clear()         # as if other sizes had used up the kept copies
    with pytest.raises(RuntimeError, match="interpolate with sizes it did not run with"):
        new_sizes(x.detach())


@pytest.mark.parametrize("scale", [1.3, (1.0, 1.1), (1.1, 2.5)])
def test_bilinear_copies_an_axis_whose_size_the_factor_keeps(device, scale):
    """floor(size * scale_factor) == size: PyTorch copies that axis (it does not resample it
    with step 1/scale_factor, which shrank and shifted the image)."""
    x = np.arange(1.0, 25.0).reshape(1, 1, 4, 6)
    y = host(F.interpolate(to_tensor(x, device), scale_factor=scale, mode="bilinear"))
    sh, sw = scale if isinstance(scale, tuple) else (scale, scale)
    if math.floor(4 * sh) == 4:
        kept = y if math.floor(6 * sw) == 6 else y[..., :1]       # rows of column 0
        np.testing.assert_array_equal(kept[0, 0, :, 0], x[0, 0, :, 0])
    if math.floor(6 * sw) == 6:
        np.testing.assert_array_equal(y[0, 0, 0, :], x[0, 0, 0, :] if math.floor(4 * sh) == 4
                                      else y[0, 0, 0, :])
        for r in range(y.shape[2]):       # every row of the output is a blend of input rows,
            assert np.all(np.diff(y[0, 0, r]) == 1.0)       # each keeping the step 1 along W
