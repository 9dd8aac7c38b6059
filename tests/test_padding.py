"""F.pad's modes (constant with negative widths, reflect, replicate, circular) and the padding
layers. Forward against NumPy's np.pad / index arithmetic written here (and torch where
installed), float64 gradchecks with random upstream gradients, the adjoint identity, errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op, host, to_tensor

_NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap",
            "constant": "constant"}


def _ref_pad(a, pad, mode, value=0.0):
    """PyTorch's F.pad from np.pad: circular and constant crop by the negative widths first
    and then pad; reflect and replicate pad by the positive widths and then crop (their
    sources are counted on the uncropped axis)."""
    widths = [(0, 0)] * a.ndim
    for k in range(len(pad) // 2):
        widths[a.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    pos = [(max(b, 0), max(e, 0)) for b, e in widths]

    def crop(arr):
        return arr[tuple(slice(max(-b, 0), arr.shape[d] - max(-e, 0))
                         for d, (b, e) in enumerate(widths))]
    kw = {"constant_values": value} if mode == "constant" else {}
    if mode in ("circular", "constant"):
        return np.pad(crop(a), pos, mode=_NP_MODE[mode], **kw)
    return crop(np.pad(a, pos, mode=_NP_MODE[mode]))


CASES = [((2, 3, 5), (1, 2)), ((2, 3, 5), (4, 0)), ((3, 5), (2, 3)), ((2, 3, 5), (-1, 3)),
         ((2, 3, 5), (2, -2)), ((1, 2, 4, 5), (1, 2, 3, 0)), ((2, 4, 5), (0, 1, 2, 2)),
         ((1, 2, 4, 5), (-1, 2, 1, -2)), ((1, 2, 3, 4, 3), (1, 0, 2, 1, 1, 2)),
         ((2, 3, 4, 3), (2, 1, 0, 1, 1, 1))]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pad", CASES)
def test_pad_modes(device, rng, mode, shape, pad):
    x = rng.standard_normal(shape)
    check_op(lambda t: F.pad(t, pad, mode=mode), [x], lambda a: _ref_pad(a, pad, mode),
             device)


def test_reflect_by_hand():
    x = minidl.tensor(np.arange(5.0))
    # reflect does not repeat the edge entry, replicate does, circular wraps around
    assert F.pad(x.reshape(1, 5), (3, 2), "reflect").numpy().ravel().tolist() == \
        [3, 2, 1, 0, 1, 2, 3, 4, 3, 2]
    assert F.pad(x.reshape(1, 5), (2, 1), "replicate").numpy().ravel().tolist() == \
        [0, 0, 0, 1, 2, 3, 4, 4]
    assert F.pad(x.reshape(1, 5), (2, 1), "circular").numpy().ravel().tolist() == \
        [3, 4, 0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize("pad", [(-1, 2), (2, -3), (-2, -2), (1, 1, -1, 0), (-3, 0, 0, 0)])
def test_constant_negative_pad_crops(device, rng, pad):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: F.pad(t, pad, value=1.5), [x], lambda a: _ref_pad(a, pad, "constant",
                                                                           1.5), device)


def test_constant_unchanged_and_int(device, rng):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: F.pad(t, (1, 2, 0, 1)), [x],
             lambda a: np.pad(a, [(0, 0), (0, 1), (1, 2)]), device)
    i = to_tensor(np.arange(6).reshape(2, 3), device)
    for mode in ("constant", "reflect", "replicate", "circular"):
        y = F.pad(i, (1, 1), mode)
        assert y.dtype == i.dtype
        np.testing.assert_array_equal(host(y), _ref_pad(np.arange(6).reshape(2, 3), (1, 1), mode))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_adjoint(device, rng, mode):
    """<pad(x), y> == <x, pad^T(y)>: backward is the adjoint, with the reflected / replicated /
    wrapped entries' gradients summed back onto their sources."""
    x = rng.standard_normal((2, 2, 4, 5))
    pad = (3, 2, 1, 3)
    t = to_tensor(x, device, requires_grad=True)
    y = F.pad(t, pad, mode)
    g = rng.standard_normal(y.shape)
    y.backward(to_tensor(g, device))
    np.testing.assert_allclose(np.sum(host(y) * g), np.sum(x * host(t.grad)), rtol=1e-12)
    # each input entry's gradient: the sum over the output entries that copy it (loops here)
    src = np.arange(x.size).reshape(x.shape).astype(np.float64)
    copied = _ref_pad(src, pad, mode).astype(np.int64)
    expect = np.zeros(x.size)
    for flat, gv in zip(copied.ravel(), g.ravel()):
        expect[flat] += gv
    np.testing.assert_allclose(host(t.grad).ravel(), expect, rtol=1e-12, atol=1e-12)


def test_pad_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 4))
    for mode in ("reflect", "replicate", "circular", "constant"):
        for pad in [(1, 2, 0, 0), (2, 1, 3, 0), (-1, 2, 1, -2), (0, 0, 4, -1), (2, -2, 1, 1)]:
            ours = F.pad(minidl.tensor(x), pad, mode).numpy()
            ref = torch.nn.functional.pad(torch.tensor(x), pad, mode=mode).numpy()
            np.testing.assert_array_equal(ours, ref)


def test_pad_errors():
    x = minidl.randn(1, 2, 4)
    with pytest.raises(ValueError, match=r"pad: 'mode' must be one of"):
        F.pad(x, (1, 1), "symmetric")
    with pytest.raises(ValueError, match=r"reflect' needs each padding to be smaller than the "
                                         r"size of the dim it pads, got \(4, 0\) for dim 2"):
        F.pad(x, (4, 0), "reflect")
    with pytest.raises(ValueError, match=r"mode='replicate' pads the last 1, 2 or 3 dims.*"
                                         r"got 2 entries for an input of shape \(4,\)"):
        F.pad(minidl.randn(4), (1, 1), "replicate")
    with pytest.raises(ValueError, match=r"got 6 entries for an input of shape \(1, 2, 4\)"):
        F.pad(x, (1, 1, 1, 1, 0, 0), "reflect")
    with pytest.raises(ValueError, match=r"circular' wraps around at most once"):
        F.pad(x, (5, 0), "circular")
    with pytest.raises(ValueError, match=r"mode='reflect' takes no fill 'value'"):
        F.pad(x, (1, 1), "reflect", value=2.0)
    with pytest.raises(ValueError, match=r"leaves dim 2 of size 4 with 0 entries"):
        F.pad(x, (-2, -2), "replicate")
    with pytest.raises(ValueError, match=r"negative padding \(-5, 1\) crops more than dim 2"):
        F.pad(x, (-5, 1))
    with pytest.raises(ValueError, match=r"'pad' needs an even number of entries"):
        F.pad(x, (1, 1, 1), "reflect")
    with pytest.raises(TypeError, match=r"pad: 'value' must be a number"):
        F.pad(x, (1, 1), value="0")
    assert F.pad(x, (1, 1), "reflect", value=0).shape == (1, 2, 6)    # as PyTorch: 0 is fine


@pytest.mark.parametrize("cls,mode,dims", [
    (nn.ReflectionPad1d, "reflect", 1), (nn.ReflectionPad2d, "reflect", 2),
    (nn.ReflectionPad3d, "reflect", 3), (nn.ReplicationPad1d, "replicate", 1),
    (nn.ReplicationPad2d, "replicate", 2), (nn.ReplicationPad3d, "replicate", 3),
    (nn.CircularPad1d, "circular", 1), (nn.CircularPad2d, "circular", 2),
    (nn.CircularPad3d, "circular", 3), (nn.ZeroPad1d, "constant", 1),
    (nn.ZeroPad2d, "constant", 2), (nn.ZeroPad3d, "constant", 3)])
def test_pad_layers(device, rng, cls, mode, dims):
    x = rng.standard_normal((1, 2, 3, 4, 4)[-(dims + 2):])
    t = to_tensor(x, device)
    pad = (1, 2, 2, 0, 1, 1)[:2 * dims]
    np.testing.assert_array_equal(host(cls(pad)(t)), _ref_pad(x, pad, mode))
    np.testing.assert_array_equal(host(cls(1)(t)), _ref_pad(x, (1,) * (2 * dims), mode))
    with pytest.raises(TypeError, match=rf"{cls.__name__}: 'padding' must be an int or a "
                                        rf"tuple of {2 * dims} ints"):
        cls((1, 1, 1))


def test_constant_pad_layers(rng):
    x = rng.standard_normal((1, 2, 3, 4))
    y = nn.ConstantPad2d((1, 0, -1, 2), 3.5)(minidl.tensor(x))
    np.testing.assert_array_equal(y.numpy(), _ref_pad(x, (1, 0, -1, 2), "constant", 3.5))
    y = nn.ConstantPad1d(2, -1.0)(minidl.tensor(x))
    np.testing.assert_array_equal(y.numpy(), _ref_pad(x, (2, 2), "constant", -1.0))
    assert "value=3.5" in repr(nn.ConstantPad3d(1, 3.5))
    with pytest.raises(TypeError, match=r"ConstantPad2d: 'value' must be a number"):
        nn.ConstantPad2d(1, None)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_zero_widths_give_a_new_tensor_not_a_view(mode):
    x = minidl.zeros(1, 1, 4)
    y = F.pad(x, (0, 0), mode=mode)
    y.add_(1)
    assert x.numpy().tolist() == [[[0.0] * 4]]
