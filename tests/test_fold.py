"""unfold / fold (im2col and col2im exposed) and pixel_shuffle / pixel_unshuffle, with their
layers: forward against loops written here (and torch where installed), the adjoint identity
<unfold(x), y> == <x, fold(y)>, float64 gradchecks with random upstream gradients, errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op, host, to_tensor


def _pairs(*vals):
    return [v if isinstance(v, tuple) else (v, v) for v in vals]


def _out(size, k, d, p, s):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _unfold_ref(x, k, d, p, s):
    """Loops: out[n, (c, i, j), oh*OW + ow] = x[n, c, oh*SH + i*DH - PH, ow*SW + j*DW - PW]."""
    (KH, KW), (DH, DW), (PH, PW), (SH, SW) = _pairs(k, d, p, s)
    N, C, H, W = x.shape
    OH, OW = _out(H, KH, DH, PH, SH), _out(W, KW, DW, PW, SW)
    out = np.zeros((N, C * KH * KW, OH * OW))
    for n in range(N):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * SH + i * DH - PH, ow * SW + j * DW - PW
                            if 0 <= h < H and 0 <= w < W:
                                out[n, (c * KH + i) * KW + j, oh * OW + ow] = x[n, c, h, w]
    return out


def _fold_ref(cols, size, k, d, p, s):
    """Loops: every block entry added onto the pixel it came from (padding dropped)."""
    (KH, KW), (DH, DW), (PH, PW), (SH, SW) = _pairs(k, d, p, s)
    H, W = size
    N, CKK, L = cols.shape
    C = CKK // (KH * KW)
    OW = _out(W, KW, DW, PW, SW)
    out = np.zeros((N, C, H, W))
    for n in range(N):
        for r in range(CKK):
            c, i, j = r // (KH * KW), (r // KW) % KH, r % KW
            for b in range(L):
                h = (b // OW) * SH + i * DH - PH
                w = (b % OW) * SW + j * DW - PW
                if 0 <= h < H and 0 <= w < W:
                    out[n, c, h, w] += cols[n, r, b]
    return out


CASES = [((1, 2, 5, 4), 2, 1, 0, 1), ((1, 2, 6, 5), (3, 2), 1, 1, 2),
         ((2, 1, 6, 5), 3, 2, (1, 2), (2, 1)), ((1, 1, 4, 4), 1, 1, 0, 1),
         ((1, 2, 5, 5), (2, 3), (2, 1), 2, 3)]


@pytest.mark.parametrize("shape,k,d,p,s", CASES)
def test_unfold(device, rng, shape, k, d, p, s):
    x = rng.standard_normal(shape)
    check_op(lambda t: F.unfold(t, k, d, p, s), [x], lambda a: _unfold_ref(a, k, d, p, s),
             device)


@pytest.mark.parametrize("shape,k,d,p,s", CASES)
def test_fold(device, rng, shape, k, d, p, s):
    N, C, H, W = shape
    cols_shape = _unfold_ref(np.zeros(shape), k, d, p, s).shape
    y = rng.standard_normal(cols_shape)
    check_op(lambda t: F.fold(t, (H, W), k, d, p, s), [y],
             lambda a: _fold_ref(a, (H, W), k, d, p, s), device)


@pytest.mark.parametrize("shape,k,d,p,s", CASES)
def test_fold_is_unfolds_adjoint(device, rng, shape, k, d, p, s):
    x = rng.standard_normal(shape)
    u = F.unfold(to_tensor(x, device), k, d, p, s)
    y = rng.standard_normal(u.shape)
    f = F.fold(to_tensor(y, device), shape[2:], k, d, p, s)
    np.testing.assert_allclose(np.sum(host(u) * y), np.sum(x * host(f)), rtol=1e-12)


def test_unbatched_and_torch(rng):
    x = rng.standard_normal((2, 5, 6))
    u = F.unfold(minidl.tensor(x), (2, 3), padding=1, stride=(1, 2))
    np.testing.assert_allclose(u.numpy(), _unfold_ref(x[None], (2, 3), 1, 1, (1, 2))[0])
    f = F.fold(u, (5, 6), (2, 3), padding=1, stride=(1, 2))
    assert f.shape == (2, 5, 6)
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x[None])
    tu = torch.nn.functional.unfold(tx, (2, 3), padding=1, stride=(1, 2))
    np.testing.assert_allclose(u.numpy(), tu.numpy()[0])
    tf = torch.nn.functional.fold(tu, (5, 6), (2, 3), padding=1, stride=(1, 2))
    np.testing.assert_allclose(f.numpy(), tf.numpy()[0])


def test_unfold_fold_layers(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    unfold, fold = nn.Unfold(3, padding=1, stride=2), nn.Fold((6, 6), 3, padding=1, stride=2)
    u = unfold(minidl.tensor(x))
    np.testing.assert_allclose(u.numpy(), _unfold_ref(x, 3, 1, 1, 2))
    np.testing.assert_allclose(fold(u).numpy(), _fold_ref(u.numpy(), (6, 6), 3, 1, 1, 2))
    assert "output_size=(6, 6)" in repr(fold)
    # with non-overlapping blocks fold undoes unfold
    v = nn.Unfold(2, stride=2)(minidl.tensor(x))
    np.testing.assert_array_equal(nn.Fold(6, 2, stride=2)(v).numpy(), x)


def test_unfold_fold_errors():
    x = minidl.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"unfold: 'input' must be 4-D \(N, C, H, W\) or 3-D"):
        F.unfold(minidl.randn(4, 4), 2)
    with pytest.raises(ValueError, match=r"unfold: no block fits: a kernel of 5"):
        F.unfold(x, 5)
    with pytest.raises(ValueError, match=r"unfold: 'stride' must be positive"):
        F.unfold(x, 2, stride=0)
    with pytest.raises(TypeError, match=r"unfold: argument 'input' must be a floating-point"):
        F.unfold(minidl.tensor(np.zeros((1, 1, 3, 3), np.int64)), 2)
    with pytest.raises(ValueError, match=r"fold: 'input' has 8 blocks \(dim -1\), but "
                                         r"output_size \(4, 4\).* takes 3\*3 = 9"):
        F.fold(minidl.randn(1, 8, 8), (4, 4), 2)
    with pytest.raises(ValueError, match=r"fold: dim -2 of 'input' \(7\) must be divisible"):
        F.fold(minidl.randn(1, 7, 9), (4, 4), 2)
    with pytest.raises(ValueError, match=r"fold: 'input' must be 3-D"):
        F.fold(x, (4, 4), 2)
    with pytest.raises(TypeError, match=r"Unfold: 'kernel_size' must be an int or a pair"):
        nn.Unfold((1, 2, 3))


# ---------------------------------------------------------------------------------------------
# pixel shuffle

def _shuffle_ref(x, r):
    """Loops: out[..., c, h*r + a, w*r + b] = x[..., c*r*r + a*r + b, h, w]."""
    *lead, Cr, H, W = x.shape
    C = Cr // (r * r)
    xf = x.reshape(-1, Cr, H, W)
    out = np.zeros((xf.shape[0], C, H * r, W * r))
    for n in range(xf.shape[0]):
        for c in range(C):
            for a in range(r):
                for b in range(r):
                    out[n, c, a::r, b::r] = xf[n, c * r * r + a * r + b]
    return out.reshape(*lead, C, H * r, W * r)


@pytest.mark.parametrize("shape,r", [((2, 8, 2, 3), 2), ((9, 2, 2), 3), ((2, 1, 4, 1, 2), 2),
                                     ((1, 3, 2, 2), 1)])
def test_pixel_shuffle(device, rng, shape, r):
    x = rng.standard_normal(shape)
    check_op(lambda t: F.pixel_shuffle(t, r), [x], lambda a: _shuffle_ref(a, r), device)
    y = _shuffle_ref(x, r)
    check_op(lambda t: F.pixel_unshuffle(t, r), [y], lambda a: x, device)


def test_pixel_shuffle_layers_and_torch(rng):
    x = rng.standard_normal((2, 12, 3, 2))
    y = nn.PixelShuffle(2)(minidl.tensor(x))
    np.testing.assert_array_equal(nn.PixelUnshuffle(2)(y).numpy(), x)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(
        y.numpy(), torch.nn.functional.pixel_shuffle(torch.tensor(x), 2).numpy())
    np.testing.assert_array_equal(
        F.pixel_unshuffle(minidl.tensor(x), 1).numpy(), x)


def test_pixel_shuffle_errors():
    with pytest.raises(ValueError, match=r"pixel_shuffle: 'input' must be \(\*, C\*r\*r, H, W\)"
                                         r" with the channels divisible by r\*r = 4"):
        F.pixel_shuffle(minidl.randn(1, 6, 2, 2), 2)
    with pytest.raises(ValueError, match=r"pixel_unshuffle: 'input' must be .* H and W "
                                         r"divisible by r = 2, got shape \(1, 1, 3, 2\)"):
        F.pixel_unshuffle(minidl.randn(1, 1, 3, 2), 2)
    with pytest.raises(ValueError, match=r"pixel_shuffle: 'upscale_factor' must be a positive"):
        F.pixel_shuffle(minidl.randn(1, 4, 2, 2), 0)
    with pytest.raises(TypeError, match=r"PixelUnshuffle: 'downscale_factor' must be a positive "
                                        r"int, got float 2.0"):
        nn.PixelUnshuffle(2.0)
