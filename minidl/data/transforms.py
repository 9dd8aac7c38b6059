"""Batched image transforms that run where the batch lives (NumPy on cpu, CuPy on cuda).

Every transform is a callable ``t(x, rng=None)`` on a whole batch ``x`` of shape (N, C, H, W)
(a NumPy/CuPy array or a Tensor; the result has the same kind) and works with array ops only:
no per-image Python loop, so a GPU batch stays on the GPU. The random ones split into
``get_params(shape, rng)``, which draws the per-image parameters on the host from a
``numpy.random.Generator`` (a few numbers per image, so cpu and cuda give identical results for
the same generator), and ``apply(x, params)``, which moves them to the batch's device and does
the work there.

The standard CIFAR training pipeline, the batched equivalent of torchvision's
``RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)``::

    Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
             Normalize(CIFAR10_MEAN, CIFAR10_STD)])

Order matters: the crop pads the raw uint8 image with zeros (black pixels, as torchvision pads
the PIL image), and only then is the batch normalized. Cutout placed after ``Normalize`` (as in
the Cutout paper's code) fills its square with 0 in normalized units, i.e. the dataset mean.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import backend
from .._checks import check_int, check_number
from ..random import default_generator
from ..tensor import Tensor

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def _unwrap(op, x):
    """(array, was_tensor) for a batch given as a Tensor or a NumPy/CuPy array."""
    if isinstance(x, Tensor):
        return x.data, True
    if backend.is_array(x):
        return x, False
    raise TypeError(f"{op}: expected a batch (N, C, H, W) as an array or Tensor, "
                    f"got {type(x).__name__}")


def _batch(op, x):
    arr, was_tensor = _unwrap(op, x)
    if arr.ndim != 4:
        raise ValueError(f"{op}: expected a batch of shape (N, C, H, W), got shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise TypeError(f"{op}: expected a uint8 or float batch, got dtype {arr.dtype}")
    return arr, was_tensor


def _rng(op, rng):
    """A numpy Generator: ``rng`` itself, one seeded by an int, or one seeded from minidl's
    default generator (so ``minidl.manual_seed`` makes it repeat)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(int(default_generator("cpu").integers(0, 2**62, ())))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(f"{op}: rng must be a numpy.random.Generator, a non-negative int or None, "
                    f"got {rng!r}")


def _on_device_of(arr):
    """Context that makes ``arr``'s GPU current (no-op for NumPy arrays)."""
    return arr.device if backend._is_cupy_array(arr) else contextlib.nullcontext()


class Compose:
    """Apply transforms in order, all drawing from one generator: ``Compose([t1, t2])(x, rng)``.

    Each element must be a callable ``t(x, rng)``.
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = transforms

    def __call__(self, x, rng=None):
        rng = _rng("Compose", rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Normalize:
    """Per-channel ``(x / 255 - mean) / std`` for uint8 batches, ``(x - mean) / std`` for floats.

    Like torchvision's ``ToTensor()`` followed by ``Normalize(mean, std)``: ``mean`` and ``std``
    are in [0, 1] units. A uint8 batch becomes float32; a float batch keeps its dtype and is taken
    to be in [0, 1] already. Computed as ``x * scale - shift`` with per-channel float32 constants
    cached on each device.

    Args:
        mean, std: sequences of C floats (std > 0).
    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, mean, std):
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.size != std.size or mean.size == 0:
            raise ValueError(f"Normalize: mean and std need the same number (>0) of channels, "
                             f"got {mean.size} and {std.size}")
        if not np.all(std > 0):
            raise ValueError(f"Normalize: std must be > 0, got {tuple(std.tolist())}")
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())
        self._cache = {}    # (device, from uint8, dtype) -> (scale, shift) on that device

    def _constants(self, arr, dtype):
        from_uint8 = arr.dtype == np.uint8
        key = (backend.device_of(arr), from_uint8, dtype)
        if key not in self._cache:
            mean, std = np.array(self.mean), np.array(self.std)
            scale = 1.0 / (std * 255.0) if from_uint8 else 1.0 / std
            consts = [c.astype(dtype).reshape(-1, 1, 1) for c in (scale, mean / std)]
            xp = backend.get_array_module(arr)
            self._cache[key] = tuple(c if xp is np else xp.asarray(c) for c in consts)
        return self._cache[key]

    def __call__(self, x, rng=None):
        arr, was_tensor = _batch("Normalize", x)
        if arr.shape[1] != len(self.mean):
            raise ValueError(f"Normalize: batch has {arr.shape[1]} channels, mean/std have "
                             f"{len(self.mean)} (batch shape {arr.shape})")
        dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        with _on_device_of(arr):
            scale, shift = self._constants(arr, dtype)
            out = arr.astype(dtype)     # always a copy: the input batch is left untouched
            out *= scale
            out -= shift
        return Tensor(out) if was_tensor else out

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """Random ``size`` crop of each image after zero-padding it by ``padding`` on every side.

    ``get_params`` draws the top-left offsets (oy, ox) of each crop in the padded image,
    uniformly in [0, H + 2p - h] x [0, W + 2p - w]; ``apply`` pads the batch once and gathers all
    crops with one fancy-index read. Padding is zeros in the batch's units: black pixels for a
    uint8 batch (the standard CIFAR recipe, crop before normalizing).

    Args:
        size: int or (h, w) of the output.
        padding: zero padding added to each border before cropping (int >= 0).
    Shapes: (N, C, H, W) -> (N, C, h, w).
    """

    def __init__(self, size, padding=0):
        if isinstance(size, (tuple, list)) and len(size) == 2:
            self.size = tuple(check_int("RandomCrop", "size", s, 1) for s in size)
        else:
            s = check_int("RandomCrop", "size", size, 1)
            self.size = (s, s)
        self.padding = check_int("RandomCrop", "padding", padding, 0)

    def _room(self, shape):
        N, C, H, W = shape
        h, w, p = *self.size, self.padding
        if h > H + 2 * p or w > W + 2 * p:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image "
                             f"({H + 2 * p}, {W + 2 * p}) (batch shape {tuple(shape)}, "
                             f"padding={p})")
        return H + 2 * p - h + 1, W + 2 * p - w + 1

    def get_params(self, shape, rng=None):
        """Host int64 arrays (oy, ox), each (N,): crop offsets in the padded image."""
        room_y, room_x = self._room(shape)
        rng = _rng("RandomCrop", rng)
        return rng.integers(0, room_y, shape[0]), rng.integers(0, room_x, shape[0])

    def apply(self, x, params):
        arr, was_tensor = _batch("RandomCrop", x)
        self._room(arr.shape)
        N, C, H, W = arr.shape
        h, w, p = *self.size, self.padding
        Hp, Wp = H + 2 * p, W + 2 * p
        xp = backend.get_array_module(arr)
        with _on_device_of(arr):
            if p:
                padded = xp.zeros((N, C, Hp, Wp), arr.dtype)
                padded[:, :, p:p + H, p:p + W] = arr
            else:
                padded = xp.ascontiguousarray(arr)
            oy, ox = (xp.asarray(np.asarray(v, np.int64)) for v in params)
            start = xp.arange(N, dtype=np.int64) * (C * Hp * Wp) + oy * Wp + ox   # (N,)
            within = (xp.arange(C, dtype=np.int64)[:, None, None] * (Hp * Wp)
                      + xp.arange(h, dtype=np.int64)[:, None] * Wp
                      + xp.arange(w, dtype=np.int64))                          # (C, h, w)
            out = padded.reshape(-1)[start[:, None, None, None] + within]      # (N, C, h, w)
        return Tensor(out) if was_tensor else out

    def __call__(self, x, rng=None):
        arr, _ = _batch("RandomCrop", x)
        return self.apply(x, self.get_params(arr.shape, rng))

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``.

    ``get_params`` draws a (N,) bool host array; ``apply`` selects between the batch and its
    reversed view with one ``where``.
    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, p=0.5):
        self.p = check_number("RandomHorizontalFlip", "p", p, 0, 1)

    def get_params(self, shape, rng=None):
        """Host bool array (N,): which images to flip."""
        return _rng("RandomHorizontalFlip", rng).random(shape[0]) < self.p

    def apply(self, x, params):
        arr, was_tensor = _batch("RandomHorizontalFlip", x)
        xp = backend.get_array_module(arr)
        with _on_device_of(arr):
            flip = xp.asarray(np.asarray(params, dtype=bool))
            out = xp.where(flip[:, None, None, None], arr[..., ::-1], arr)
        return Tensor(out) if was_tensor else out

    def __call__(self, x, rng=None):
        arr, _ = _batch("RandomHorizontalFlip", x)
        return self.apply(x, self.get_params(arr.shape, rng))

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Cutout:
    """Zero one ``size`` x ``size`` square per image, clipped at the borders (DeVries & Taylor).

    ``get_params`` draws each square's centre (cy, cx) uniformly over the image, so squares near
    a border are partly outside it; the square covers rows ``cy - size // 2`` to
    ``cy - size // 2 + size - 1`` (likewise columns), intersected with the image. ``apply``
    builds the (N, 1, H, W) mask from two broadcast comparisons and zeroes it with one ``where``.

    Reference: DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with
    Cutout", 2017.
    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, size):
        self.size = check_int("Cutout", "size", size, 1)

    def get_params(self, shape, rng=None):
        """Host int64 arrays (cy, cx), each (N,): centres of the squares."""
        rng = _rng("Cutout", rng)
        return rng.integers(0, shape[2], shape[0]), rng.integers(0, shape[3], shape[0])

    def apply(self, x, params):
        arr, was_tensor = _batch("Cutout", x)
        N, C, H, W = arr.shape
        xp = backend.get_array_module(arr)
        with _on_device_of(arr):
            cy, cx = (xp.asarray(np.asarray(v, np.int64)) for v in params)
            y0, x0 = cy - self.size // 2, cx - self.size // 2
            rows, cols = xp.arange(H), xp.arange(W)
            in_y = (rows >= y0[:, None]) & (rows < (y0 + self.size)[:, None])      # (N, H)
            in_x = (cols >= x0[:, None]) & (cols < (x0 + self.size)[:, None])      # (N, W)
            mask = (in_y[:, :, None] & in_x[:, None, :])[:, None]                  # (N, 1, H, W)
            out = xp.where(mask, xp.zeros((), arr.dtype), arr)
        return Tensor(out) if was_tensor else out

    def __call__(self, x, rng=None):
        arr, _ = _batch("Cutout", x)
        return self.apply(x, self.get_params(arr.shape, rng))

    def __repr__(self):
        return f"Cutout(size={self.size})"
