"""Activations: relu, leaky_relu, sigmoid, tanh, gelu, softmax, log_softmax."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..kernels import threads
from ..autograd import Function
from ..tensor import is_real
from ._utils import check_float, normalize_dim, relu_mask


class ReLU(Function):
    """y = max(x, 0).  Gradient: gx = gy * (x > 0) (0 at x = 0, as in PyTorch)."""

    def forward(self, x):
        xp = backend.xp_of(x)
        y = threads.ufunc(np.maximum, x, 0) if xp is np else xp.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return relu_mask(gy, self.saved[0])


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x.  Gradient: gx = gy if x > 0 else slope * gy."""

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).where(x > 0, x, x * self.slope)

    def backward(self, gy):
        return backend.xp_of(gy).where(self.saved[0] > 0, gy, gy * self.slope)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)), computed without overflow as exp(-|x|)-based branches.
    Gradient: gx = gy * y * (1 - y)."""

    def forward(self, x):
        xp = backend.xp_of(x)
        z = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        return gy * y * (1.0 - y)


class Tanh(Function):
    """y = tanh(x).  Gradient: gx = gy * (1 - y**2)."""

    def forward(self, x):
        y = backend.xp_of(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        return gy * (1.0 - y * y)


_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(Function):
    """Gaussian error linear unit, y = x * Phi(x) with Phi the standard normal CDF.

    ``approximate='none'``: Phi(x) = (1 + erf(x / sqrt 2)) / 2;
    gradient gx = gy * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2/2) / sqrt(2 pi).
    ``approximate='tanh'``: y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3);
    gradient gx = gy * (1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)), t = tanh(u).
    Reference: Hendrycks & Gimpel, Gaussian Error Linear Units (GELUs), 2016.
    """

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        xp = backend.xp_of(x)
        self.save_for_backward(x)
        if self.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
            self.t = t
            return 0.5 * x * (1.0 + t)
        cdf = 0.5 * (1.0 + backend.erf(x / _SQRT_2))
        self.cdf = cdf
        return x * cdf

    def backward(self, gy):
        (x,) = self.saved
        xp = backend.xp_of(x)
        if self.approximate == "tanh":
            t = self.t
            du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
            return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return gy * (self.cdf + x * pdf)


def _row_max(x, dim):
    """Max along ``dim`` (kept), the shift of a stable softmax; an empty ``dim`` (nothing to
    normalize, PyTorch returns an empty result) shifts by nothing instead of failing."""
    if x.shape[dim] == 0:
        return backend.xp_of(x).zeros(x.shape[:dim] + (1,) + x.shape[dim + 1:], x.dtype)
    return x.max(axis=dim, keepdims=True)


class Softmax(Function):
    """y = exp(x - max) / sum(exp(x - max)) along ``dim`` (shifting by the max keeps it finite).
    Gradient: gx = y * (gy - sum(gy * y, dim))."""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = backend.xp_of(x)
        e = xp.exp(x - _row_max(x, self.dim))
        y = e / e.sum(axis=self.dim, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        return y * (gy - (gy * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    """y = x - max - log(sum(exp(x - max))) along ``dim``.
    Gradient: gx = gy - exp(y) * sum(gy, dim)."""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = backend.xp_of(x)
        shifted = x - _row_max(x, self.dim)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        xp = backend.xp_of(y)
        return gy - xp.exp(y) * gy.sum(axis=self.dim, keepdims=True)


def relu(input):
    """max(input, 0)."""
    return ReLU()(check_float("relu", "input", input))


def leaky_relu(input, negative_slope=0.01):
    """input if positive, else negative_slope * input."""
    check_float("leaky_relu", "input", input)
    if not is_real(negative_slope):
        raise TypeError(f"leaky_relu: 'negative_slope' must be a number, "
                        f"got {type(negative_slope).__name__}")
    return LeakyReLU(float(negative_slope))(input)


def sigmoid(input):
    """1 / (1 + exp(-input)), finite for any input."""
    return Sigmoid()(check_float("sigmoid", "input", input))


def tanh(input):
    """Hyperbolic tangent."""
    return Tanh()(check_float("tanh", "input", input))


def gelu(input, approximate="none"):
    """GELU, exact (erf) by default or with the tanh approximation (``approximate='tanh'``)."""
    check_float("gelu", "input", input)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: 'approximate' must be 'none' or 'tanh', got {approximate!r}")
    return GELU(approximate)(input)


def softmax(input, dim=-1):
    """Softmax along ``dim`` (numerically stable)."""
    check_float("softmax", "input", input)
    d = normalize_dim("softmax", dim, input.ndim)
    if input.ndim == 0:                             # one value along its only "dim": 1
        return Softmax(0)(input.reshape(1)).reshape(())
    return Softmax(d)(input)


def log_softmax(input, dim=-1):
    """log(softmax(input)) along ``dim``, computed stably (no log of 0 for large logits)."""
    check_float("log_softmax", "input", input)
    d = normalize_dim("log_softmax", dim, input.ndim)
    if input.ndim == 0:
        return LogSoftmax(0)(input.reshape(1)).reshape(())
    return LogSoftmax(d)(input)
