"""Batched transforms against per-image loop references, on every device."""
import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.data import transforms as T

from .helpers import host


def batch(device, shape=(6, 3, 8, 10), dtype=np.uint8, seed=0, low=1):
    """A random batch with no zero pixels (so zeros written by a transform are countable)."""
    x = np.random.default_rng(seed).integers(low, 256, shape).astype(dtype)
    return x, backend.to_device(x, device)


def crop_reference(x, oy, ox, size, padding):
    """Loop oracle: zero-pad each image and slice it at its offset."""
    h, w = size
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return np.stack([padded[i, :, oy[i]:oy[i] + h, ox[i]:ox[i] + w] for i in range(len(x))])


@pytest.mark.parametrize("size,padding", [(8, 4), ((8, 10), 2), ((5, 7), 0), (3, 1)])
def test_random_crop_is_slice_of_padded_image(device, size, padding):
    x, xd = batch(device)
    t = T.RandomCrop(size, padding=padding)
    oy, ox = t.get_params(x.shape, np.random.default_rng(3))
    out = t(xd, np.random.default_rng(3))
    assert out.dtype == np.uint8 and backend.device_of(out) == device
    np.testing.assert_array_equal(host(out), crop_reference(x, oy, ox, t.size, padding))


def test_random_crop_extreme_offsets_show_zero_border(device):
    x, xd = batch(device, shape=(2, 3, 8, 8))
    t = T.RandomCrop(8, padding=4)
    out = host(t.apply(xd, (np.array([0, 8]), np.array([0, 8]))))
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all()
    np.testing.assert_array_equal(out[0, :, 4:, 4:], x[0, :, :4, :4])
    np.testing.assert_array_equal(out[1, :, :4, :4], x[1, :, 4:, 4:])
    assert (out[1, :, 4:, :] == 0).all()


def test_random_crop_offsets_cover_the_range():
    oy, ox = T.RandomCrop(32, padding=4).get_params((4000, 3, 32, 32), np.random.default_rng(0))
    assert oy.min() == 0 and oy.max() == 8 and ox.min() == 0 and ox.max() == 8


def test_random_crop_errors():
    with pytest.raises(ValueError, match="RandomCrop: crop .* larger than the padded image"):
        T.RandomCrop(20, padding=2)(np.zeros((1, 3, 8, 8), np.uint8), 0)
    with pytest.raises(ValueError, match="RandomCrop: 'padding' must be a non-negative int, "
                                         "got -1"):
        T.RandomCrop(8, padding=-1)
    with pytest.raises(ValueError, match=r"RandomCrop: expected a batch of shape \(N, C, H, W\)"):
        T.RandomCrop(8)(np.zeros((3, 8, 8), np.uint8), 0)


def test_horizontal_flip(device):
    x, xd = batch(device)
    t = T.RandomHorizontalFlip()
    flip = t.get_params(x.shape, np.random.default_rng(5))
    assert flip.any() and not flip.all()
    out = host(t(xd, np.random.default_rng(5)))
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], x[i, :, :, ::-1] if flip[i] else x[i])
    np.testing.assert_array_equal(host(T.RandomHorizontalFlip(p=0.0)(xd, 1)), x)
    np.testing.assert_array_equal(host(T.RandomHorizontalFlip(p=1.0)(xd, 1)), x[..., ::-1])
    with pytest.raises(ValueError, match=r"RandomHorizontalFlip: 'p' must be a number in "
                                         r"\[0, 1\], got 1.5"):
        T.RandomHorizontalFlip(p=1.5)


def test_normalize_uint8(device):
    x, xd = batch(device, low=0)
    out = T.Normalize(T.CIFAR10_MEAN, T.CIFAR10_STD)(xd)
    assert out.dtype == np.float32 and out.shape == x.shape
    mean = np.array(T.CIFAR10_MEAN)[:, None, None]
    std = np.array(T.CIFAR10_STD)[:, None, None]
    np.testing.assert_allclose(host(out), (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(host(xd), x)     # input untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_float_keeps_dtype(device, dtype):
    x = np.random.default_rng(0).random((4, 2, 3, 3)).astype(dtype)
    out = T.Normalize((0.5, 0.25), (0.5, 2.0))(backend.to_device(x, device))
    assert out.dtype == dtype
    ref = (x - np.array([0.5, 0.25])[:, None, None]) / np.array([0.5, 2.0])[:, None, None]
    np.testing.assert_allclose(host(out), ref, rtol=1e-6, atol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="Normalize: batch has 1 channels, mean/std have 3"):
        T.Normalize(T.CIFAR10_MEAN, T.CIFAR10_STD)(np.zeros((2, 1, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="Normalize: std must be > 0"):
        T.Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="same number"):
        T.Normalize((0.5, 0.5), (1.0,))
    with pytest.raises(TypeError, match="Normalize: expected a uint8 or float batch"):
        T.Normalize((0.5,), (1.0,))(np.zeros((1, 1, 2, 2), bool))


def cutout_reference(x, cy, cx, size):
    out = x.copy()
    for i in range(len(x)):
        y0, x0 = cy[i] - size // 2, cx[i] - size // 2
        out[i, :, max(y0, 0):max(y0 + size, 0), max(x0, 0):max(x0 + size, 0)] = 0
    return out


@pytest.mark.parametrize("size", [1, 3, 4])
def test_cutout_matches_reference(device, size):
    x, xd = batch(device, shape=(16, 3, 8, 10))
    t = T.Cutout(size)
    cy, cx = t.get_params(x.shape, np.random.default_rng(7))
    out = host(t(xd, np.random.default_rng(7)))
    np.testing.assert_array_equal(out, cutout_reference(x, cy, cx, size))


def test_cutout_zeroes_exactly_size_squared_clipped_at_borders(device):
    x, xd = batch(device, shape=(4, 3, 10, 10))
    t = T.Cutout(4)
    cy, cx = np.array([5, 0, 9, 0]), np.array([5, 5, 9, 0])
    zeros = (host(t.apply(xd, (cy, cx))) == 0).sum(axis=(2, 3))     # (N, C)
    # interior: 4x4; top border: rows -2..1 -> 2 rows; bottom-right: rows/cols 7..9 (3x3);
    # top-left corner: 2x2
    np.testing.assert_array_equal(zeros, np.array([[16] * 3, [8] * 3, [9] * 3, [4] * 3]))


def test_compose_equals_sequence_and_is_seeded(device):
    x, xd = batch(device, shape=(5, 3, 8, 8))
    steps = [T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.Cutout(3),
             T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))]
    out = T.Compose(steps)(xd, np.random.default_rng(11))
    rng, ref = np.random.default_rng(11), xd
    for s in steps:
        ref = s(ref, rng)
    np.testing.assert_array_equal(host(out), host(ref))
    again = T.Compose(steps)(xd, np.random.default_rng(11))
    np.testing.assert_array_equal(host(out), host(again))
    assert out.dtype == np.float32 and out.shape == (5, 3, 8, 8)


def test_rng_none_follows_manual_seed():
    x = np.random.default_rng(0).integers(0, 256, (32, 3, 8, 8)).astype(np.uint8)
    t = T.Compose([T.RandomCrop(8, padding=4), T.RandomHorizontalFlip()])
    minidl.manual_seed(3)
    a = t(x)
    minidl.manual_seed(3)
    np.testing.assert_array_equal(a, t(x))
    assert not np.array_equal(a, t(x))


def test_tensor_in_tensor_out(device):
    x, _ = batch(device, shape=(2, 3, 8, 8))
    out = T.RandomCrop(8, padding=1)(minidl.tensor(x, device=device), 0)
    assert isinstance(out, minidl.Tensor) and out.dtype == np.uint8 and out.device == device


def test_standard_pipeline_pads_black_before_normalizing(device):
    """Like torchvision: the zero padding is black pixels, normalized to -mean/std."""
    x = np.full((1, 3, 8, 8), 255, np.uint8)
    crop, norm = T.RandomCrop(8, padding=4), T.Normalize(T.CIFAR10_MEAN, T.CIFAR10_STD)
    out = host(norm(crop.apply(backend.to_device(x, device), (np.array([0]), np.array([0])))))
    black = -np.array(T.CIFAR10_MEAN) / np.array(T.CIFAR10_STD)
    np.testing.assert_allclose(out[0, :, 0, 0], black, rtol=1e-5)
    white = (1 - np.array(T.CIFAR10_MEAN)) / np.array(T.CIFAR10_STD)
    np.testing.assert_allclose(out[0, :, 7, 7], white, rtol=1e-5)


def test_bad_rng_and_input():
    with pytest.raises(TypeError, match="RandomCrop: rng must be a numpy.random.Generator"):
        T.RandomCrop(4)(np.zeros((1, 1, 4, 4), np.uint8), "seed")
    with pytest.raises(TypeError, match="Cutout: expected a batch"):
        T.Cutout(2)([[1, 2]], 0)
    with pytest.raises(TypeError, match="Compose: every transform must be callable"):
        T.Compose([3])
