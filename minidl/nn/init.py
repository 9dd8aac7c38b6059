"""Weight initialization, in place, drawing from minidl's seeded generator.

Fans follow PyTorch: for a weight of shape (out, in, *kernel), fan_in = in * prod(kernel) and
fan_out = out * prod(kernel).

Reference: He et al., Delving Deep into Rectifiers (2015); Glorot & Bengio, Understanding the
difficulty of training deep feedforward neural networks (2010).
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .._checks import check_int, check_number
from ..random import default_generator
from ..autograd import no_grad
from ..tensor import Tensor


def _check(op, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


_GAIN_ONE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
             "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """Recommended std gain for a nonlinearity (PyTorch's table).

    1 for linear, conv*/conv_transpose* and sigmoid; 5/3 for tanh; sqrt(2) for relu;
    sqrt(2 / (1 + slope^2)) for leaky_relu with negative slope ``param`` (default 0.01); 3/4
    for selu (self-normalizing networks keep N(0, 1/fan_in), i.e. gain 1, so use that there).
    """
    if nonlinearity in _GAIN_ONE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check_number(
            "calculate_gain", "param", param, where=" (the leaky_relu negative slope)")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one "
                     f"of {', '.join(_GAIN_ONE)}, tanh, relu, leaky_relu, selu")


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight with shape (out, in, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in/out needs a tensor with at least 2 dimensions, got "
                         f"shape {tensor.shape}")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, draw):
    with no_grad():
        tensor.data[...] = draw(default_generator(tensor.device))
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    _check("uniform_", tensor)
    return _fill(tensor, lambda g: g.uniform(tensor.shape, tensor.dtype, a, b))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std^2)."""
    _check("normal_", tensor)
    return _fill(tensor, lambda g: g.normal(tensor.shape, tensor.dtype, mean, std))


def constant_(tensor, val):
    _check("constant_", tensor)
    with no_grad():
        tensor.data[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2) with std = gain / sqrt(fan): He initialization.

    As in PyTorch the default nonlinearity is leaky_relu with slope ``a`` (a=0 gives the ReLU
    gain sqrt 2)."""
    _check("kaiming_normal_", tensor)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan): He initialization, uniform."""
    _check("kaiming_uniform_", tensor)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)): Glorot initialization."""
    _check("xavier_normal_", tensor)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)): Glorot initialization, uniform."""
    _check("xavier_uniform_", tensor)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds, not in units of std).

    Inverse-CDF sampling, as PyTorch: u ~ U(Phi(alpha), Phi(beta)) with alpha = (a - mean) /
    std and beta = (b - mean) / std, then x = mean + std * Phi^-1(u), in float64 on the
    tensor's device, clipped into [a, b] against rounding. An interval right of the mean is
    sampled mirrored (on the left, where Phi keeps its precision) and flipped back.
    """
    _check("trunc_normal_", tensor)
    mean, std, a, b = (check_number("trunc_normal_", n, v)
                       for n, v in (("mean", mean), ("std", std), ("a", a), ("b", b)))
    if not std > 0:
        raise ValueError(f"trunc_normal_: 'std' must be positive, got {std}")
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    lo, hi = (a - mean) / std, (b - mean) / std
    flip = lo > 0
    if flip:
        lo, hi = -hi, -lo

    def draw(g):
        u = g.uniform(tensor.shape, np.float64, _ndtr(lo), _ndtr(hi))
        z = _ndtri(u)
        x = (-z if flip else z) * std + mean
        return backend.xp_of(x).clip(x, a, b).astype(tensor.dtype)
    return _fill(tensor, draw)


def _ndtr(x):
    """The standard normal CDF of a Python float (accurate far into the lower tail)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


# Acklam's rational approximations of the normal quantile (relative error < 1.2e-9)
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00, 1.0)
_P_LOW = 0.02425


def _poly(coefs, x):
    y = coefs[0]
    for c in coefs[1:]:
        y = y * x + c
    return y


def _ndtri(p):
    """Phi^-1(p) elementwise for a float64 array ``p`` in (0, 1), on its device: a central
    rational approximation for p in [0.02425, 0.97575], and one in sqrt(-2 log(tail))
    for each tail (P. J. Acklam's algorithm)."""
    xp = backend.xp_of(p)
    p = xp.clip(p, np.finfo(np.float64).tiny, 1.0 - 2.0 ** -53)
    q = p - 0.5
    r = xp.minimum(q * q, (0.5 - _P_LOW) ** 2)           # where it is used (no pole past it)
    central = _poly(_A, r) * q / _poly(_B, r)
    t = xp.sqrt(-2.0 * xp.log(xp.minimum(p, 1.0 - p)))    # the nearer tail's distance
    tail = _poly(_C, t) / _poly(_D, t)                    # the lower tail's quantile
    return xp.where(xp.abs(q) <= 0.5 - _P_LOW, central, xp.where(q < 0, tail, -tail))


def orthogonal_(tensor, gain=1.0):
    """Fill with a (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2013).

    The tensor is seen as a (shape[0], numel / shape[0]) matrix; a Gaussian matrix of that
    shape is drawn from the device's generator and replaced by the Q of its QR decomposition,
    with column signs fixed by R's diagonal so that Q is uniformly distributed. The QR runs on
    the host in float64 (a one-off at init; exact for every dtype, float16 included), so a
    GPU tensor's draw is copied to the host and back.

    Reference: Saxe et al., Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks (2013).
    """
    _check("orthogonal_", tensor)
    gain = check_number("orthogonal_", "gain", gain)
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = backend.as_numpy(default_generator(tensor.device).normal((rows, cols), np.float64))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    d = np.sign(np.diag(r))
    q = q * np.where(d == 0, 1.0, d)
    if rows < cols:
        q = q.T
    return _set(tensor, (q * gain).reshape(tensor.shape))


def eye_(tensor):
    """Fill a 2-D tensor with the identity (ones on the main diagonal of a rectangle)."""
    _check("eye_", tensor)
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tensor.shape}")
    return _set(tensor, np.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """Fill a 3/4/5-D conv weight with the Dirac delta: the convolution is the identity.

    Within each of ``groups`` groups of output channels, output channel d takes input channel d
    at the kernel's centre (as many as min(out / groups, in) channels; the rest stay zero).
    """
    _check("dirac_", tensor)
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3, 4 or 5-D tensors are supported, got shape "
                         f"{tensor.shape}")
    groups = check_int("dirac_", "groups", groups, 1)
    out_ch, in_ch = tensor.shape[:2]
    if out_ch % groups:
        raise ValueError(f"dirac_: dim 0 of the tensor ({out_ch}) must be divisible by "
                         f"groups ({groups}), got shape {tensor.shape}")
    per_group = out_ch // groups
    w = np.zeros(tensor.shape)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(per_group, in_ch)):
            w[(g * per_group + d, d) + centre] = 1.0
    return _set(tensor, w)


def _set(tensor, values):
    """Write host array ``values`` into the tensor (cast to its dtype, moved to its device)."""
    with no_grad():
        tensor.data[...] = backend.to_device(values.astype(tensor.dtype), tensor.device)
    return tensor
