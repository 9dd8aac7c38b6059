"""Activations: relu, leaky_relu, sigmoid, tanh, gelu, softmax, log_softmax, and the smooth and
piecewise-linear ones of modern nets: silu, mish, elu, softplus, hardtanh, relu6, hardsigmoid,
hardswish (at a kink, the gradient is the one PyTorch defines, given in each docstring)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import backend
from .._checks import check_number
from ..kernels import threads
from ..autograd import Function
from ._utils import blockwise, cast_to_dtype_arg, check_float, normalize_dim, relu_mask
from .elementwise import Clip


class ReLU(Function):
    """y = max(x, 0).  Gradient: gx = gy * (x > 0) (0 at x = 0, as in PyTorch; 0 at x = NaN
    too, where PyTorch passes gy on: y is NaN there either way)."""

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


def _sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def _softplus(xp, x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)), computed without overflow as exp(-|x|)-based branches.
    Gradient: gx = gy * y * (1 - y)."""

    def forward(self, x):
        y = _sigmoid(backend.xp_of(x), x)
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


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


_BLOCK = 1 << 16    # values per block of a host pass chain: its temporaries stay in the L2 cache


class GELU(Function):
    """Gaussian error linear unit, y = x * Phi(x) with Phi the standard normal CDF.

    ``approximate='none'``: Phi(x) = (1 + erf(x / sqrt 2)) / 2;
    gradient gx = gy * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2/2) / sqrt(2 pi).
    ``approximate='tanh'``: y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3);
    gradient gx = gy * (1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)), t = tanh(u).
    On the host the exact form runs in blocks of ``_BLOCK`` values on the host threads (Phi's
    ~30 passes then stay in cache: 2x faster; they were 15% of a ViT step).
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
        if xp is not np or x.dtype == np.float64:      # float64: erfc to full precision
            self.cdf = backend.normal_cdf(x)
            return x * self.cdf
        xf = x.reshape(-1)
        cdf, y = np.empty_like(xf), np.empty_like(xf)

        def block(lo, hi):
            t, z2 = np.empty(hi - lo, x.dtype), np.empty(hi - lo, x.dtype)
            backend.normal_cdf_fit(xf[lo:hi], cdf[lo:hi], t, z2)
            np.multiply(xf[lo:hi], cdf[lo:hi], out=y[lo:hi])
        blockwise(xp, block, xf.size, _BLOCK)
        self.cdf = cdf.reshape(x.shape)
        return y.reshape(x.shape)

    def backward(self, gy):
        (x,) = self.saved
        xp = backend.xp_of(x)
        if self.approximate == "tanh":
            t = self.t
            du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
            return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
        xf, gf, cdf = x.reshape(-1), gy.reshape(-1), self.cdf.reshape(-1)
        gx = xp.empty_like(gf)

        def block(lo, hi):                  # gy * (cdf + x * pdf), pdf = exp(-x^2 / 2) c
            xs, g = xf[lo:hi], gx[lo:hi]
            xp.multiply(xs * -0.5, xs, out=g)
            xp.exp(g, out=g)
            g *= _INV_SQRT_2PI
            g *= xs
            g += cdf[lo:hi]
            g *= gf[lo:hi]
        blockwise(xp, block, xf.size, _BLOCK)
        return gx.reshape(x.shape)


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


class SiLU(Function):
    """y = x * s with s = sigmoid(x) (the swish).  Gradient: gx = gy * s * (1 + x * (1 - s)).
    Reference: Elfwing et al., Sigmoid-Weighted Linear Units, 2017."""

    def forward(self, x):
        s = _sigmoid(backend.xp_of(x), x)
        self.save_for_backward(x, s)
        return x * s

    def backward(self, gy):
        x, s = self.saved
        return gy * s * (1.0 + x * (1.0 - s))


class Mish(Function):
    """y = x * t with t = tanh(softplus(x)).
    Gradient: gx = gy * (t + x * (1 - t^2) * sigmoid(x))   (d softplus(x) / dx = sigmoid(x)).
    Reference: Misra, Mish: A Self Regularized Non-Monotonic Activation Function, 2019."""

    def forward(self, x):
        xp = backend.xp_of(x)
        t = xp.tanh(_softplus(xp, x))
        self.save_for_backward(x, t)
        return x * t

    def backward(self, gy):
        x, t = self.saved
        return gy * (t + x * (1.0 - t * t) * _sigmoid(backend.xp_of(x), x))


class ELU(Function):
    """y = x if x > 0 else alpha * (exp(x) - 1).
    Gradient: gx = gy if x > 0 else gy * alpha * exp(x) (so alpha * gy at x = 0, as in PyTorch).
    Reference: Clevert et al., Fast and Accurate Deep Network Learning by ELUs, 2015."""

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, x):
        xp = backend.xp_of(x)
        self.save_for_backward(x)
        # expm1 of min(x, 0): the branch not taken must not overflow for large x
        return xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)) * self.alpha)

    def backward(self, gy):
        (x,) = self.saved
        xp = backend.xp_of(x)
        return xp.where(x > 0, gy, gy * xp.exp(xp.minimum(x, 0)) * self.alpha)


class Softplus(Function):
    """y = log(1 + exp(beta * x)) / beta, and y = x where beta * x > threshold (linear there).
    Gradient: gx = gy * sigmoid(beta * x), and gx = gy where beta * x > threshold."""

    def __init__(self, beta, threshold):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        xp = backend.xp_of(x)
        bx = x * self.beta
        self.save_for_backward(bx)
        return xp.where(bx > self.threshold, x, _softplus(xp, bx) * (1.0 / self.beta))

    def backward(self, gy):
        (bx,) = self.saved
        xp = backend.xp_of(bx)
        return xp.where(bx > self.threshold, gy, gy * _sigmoid(xp, bx))


class Hardtanh(Clip):
    """y = min(max(x, lo), hi), clip's forward.  Gradient: gx = gy where lo < x < hi, else 0
    (0 at both kinks, as in PyTorch, where clip passes it). relu6 is hardtanh with lo = 0,
    hi = 6."""

    strict = True


class Hardsigmoid(Function):
    """y = min(max(x / 6 + 1/2, 0), 1).  Gradient: gx = gy / 6 where -3 < x < 3, else 0
    (0 at the kinks x = -3 and x = 3, as in PyTorch)."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).clip(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)

    def backward(self, gy):
        (x,) = self.saved
        return gy * ((x > -3.0) & (x < 3.0)) * (1.0 / 6.0)


class Hardswish(Function):
    """y = x * min(max(x + 3, 0), 6) / 6: 0 for x <= -3, x for x >= 3, x (x + 3) / 6 between.
    Gradient: gx = 0 for x <= -3, gy for x >= 3, gy * (x / 3 + 1/2) between (so 0 at x = -3
    and gy at x = 3, as in PyTorch).
    Reference: Howard et al., Searching for MobileNetV3, 2019."""

    def forward(self, x):
        xp = backend.xp_of(x)
        self.save_for_backward(x)
        return x * xp.clip(x + 3.0, 0.0, 6.0) * (1.0 / 6.0)

    def backward(self, gy):
        (x,) = self.saved
        xp = backend.xp_of(x)
        gx = xp.where(x >= 3.0, gy, gy * (x * (1.0 / 3.0) + 0.5))
        return xp.where(x > -3.0, gx, 0)          # (gx * mask would be NaN at x = -inf)


def relu(input, inplace=False):
    """max(input, 0). (``inplace`` is accepted for PyTorch compatibility: the result is always
    a new tensor and ``input`` is left unchanged; so in every activation here.)"""
    return ReLU()(check_float("relu", "input", input))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """input if positive, else negative_slope * input."""
    check_float("leaky_relu", "input", input)
    return LeakyReLU(check_number("leaky_relu", "negative_slope", negative_slope))(input)


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


def _softmax_args(op, input, dim, dtype):
    """The input (cast to ``dtype`` first when one is given, as PyTorch does, so the op runs
    and returns in it) and the dim. An omitted dim takes PyTorch's legacy choice, deprecated
    there and warned of here: dim 0 for a 0-, 1- or 3-D input, else dim 1 (the channels of an
    NCHW batch); the result then equals PyTorch's."""
    check_float(op, "input", input)
    input = cast_to_dtype_arg(op, input, dtype, kinds="f")
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
        warnings.warn(f"{op}: no 'dim' given; as in PyTorch (where leaving it out is "
                      f"deprecated) a {input.ndim}-D input takes dim={dim}. Pass dim "
                      "explicitly.", UserWarning, stacklevel=3)
    return input, normalize_dim(op, dim, input.ndim)


def softmax(input, dim=None, *, dtype=None):
    """Softmax along ``dim`` (numerically stable); ``dtype``: cast the input to it first.
    Without ``dim``, PyTorch's legacy choice with a warning (see ``_softmax_args``)."""
    input, d = _softmax_args("softmax", input, dim, dtype)
    if input.ndim == 0:                             # one value along its only "dim": 1
        return Softmax(0)(input.reshape(1)).reshape(())
    return Softmax(d)(input)


def log_softmax(input, dim=None, *, dtype=None):
    """log(softmax(input)) along ``dim``, computed stably (no log of 0 for large logits);
    ``dtype`` and an omitted ``dim`` as in ``softmax``."""
    input, d = _softmax_args("log_softmax", input, dim, dtype)
    if input.ndim == 0:
        return LogSoftmax(0)(input.reshape(1)).reshape(())
    return LogSoftmax(d)(input)


def silu(input, inplace=False):
    """x * sigmoid(x) (the swish)."""
    return SiLU()(check_float("silu", "input", input))


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    return Mish()(check_float("mish", "input", input))


def elu(input, alpha=1.0, inplace=False):
    """input if positive, else alpha * (exp(input) - 1)."""
    check_float("elu", "input", input)
    return ELU(check_number("elu", "alpha", alpha))(input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * input)) / beta, linear (= input) where beta * input > threshold."""
    check_float("softplus", "input", input)
    beta = check_number("softplus", "beta", beta)
    if beta == 0.0:
        raise ValueError("softplus: 'beta' must be nonzero (it divides the result), got 0")
    return Softplus(beta, check_number("softplus", "threshold", threshold))(input)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """input clipped to [min_val, max_val]."""
    check_float("hardtanh", "input", input)
    lo = check_number("hardtanh", "min_val", min_val)
    hi = check_number("hardtanh", "max_val", max_val)
    if lo > hi:
        raise ValueError(f"hardtanh: 'min_val' must not exceed 'max_val', got min_val={min_val}"
                         f", max_val={max_val}")
    return Hardtanh(lo, hi)(input)


def relu6(input, inplace=False):
    """min(max(input, 0), 6)."""
    return Hardtanh(0.0, 6.0)(check_float("relu6", "input", input))


def hardsigmoid(input, inplace=False):
    """Piecewise-linear sigmoid: 0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between."""
    return Hardsigmoid()(check_float("hardsigmoid", "input", input))


def hardswish(input, inplace=False):
    """x * hardsigmoid(x): 0 for x <= -3, x for x >= 3, x (x + 3) / 6 between."""
    return Hardswish()(check_float("hardswish", "input", input))
