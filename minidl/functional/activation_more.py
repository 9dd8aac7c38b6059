"""More activations (PyTorch's names): prelu (a learned slope per channel), logsigmoid,
softsign, tanhshrink, softshrink, hardshrink. At a kink the gradient is PyTorch's, given in
each docstring."""
from __future__ import annotations

from .. import backend
from .._checks import check_number
from ..autograd import Function
from ._utils import check_float
from .activation import _sigmoid


class PReLU(Function):
    """y = x if x > 0 else w[c] * x, c the channel (dim 1; one shared w when w has one entry).
    Gradient: gx = gy if x > 0 else w[c] * gy;
              gw[c] = sum over every dim but the channel of (0 if x > 0 else x * gy)."""

    def __init__(self, shape, w_shape):
        self.shape = shape                    # w's broadcast shape: (1, C, 1, ...) or ()
        self.w_shape = w_shape

    def forward(self, x, w):
        wb = w.reshape(self.shape)
        self.save_for_backward(x, wb)
        return backend.xp_of(x).where(x > 0, x, wb * x)

    def backward(self, gy):
        x, wb = self.saved
        xp = backend.xp_of(x)
        gx = gw = None
        pos = x > 0
        if self.needs_input_grad[0]:
            gx = xp.where(pos, gy, wb * gy)
        if self.needs_input_grad[1]:
            g = xp.where(pos, gy.dtype.type(0), x * gy)
            axes = tuple(d for d in range(x.ndim) if d != 1 or not self.shape)
            gw = g.sum(axis=axes).reshape(self.w_shape)
        return gx, gw


class LogSigmoid(Function):
    """y = log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)) (finite for any x).
    Gradient: gx = gy * sigmoid(-x) = gy * (1 - sigmoid(x))."""

    def forward(self, x):
        xp = backend.xp_of(x)
        self.save_for_backward(x)
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        (x,) = self.saved
        return gy * _sigmoid(backend.xp_of(x), -x)


class Softsign(Function):
    """y = x / (1 + |x|).  Gradient: gx = gy / (1 + |x|)^2."""

    def forward(self, x):
        d = 1.0 + backend.xp_of(x).abs(x)
        self.save_for_backward(d)
        return x / d

    def backward(self, gy):
        (d,) = self.saved
        return gy / (d * d)


class Tanhshrink(Function):
    """y = x - tanh(x).  Gradient: gx = gy * tanh(x)^2."""

    def forward(self, x):
        t = backend.xp_of(x).tanh(x)
        self.save_for_backward(t)
        return x - t

    def backward(self, gy):
        (t,) = self.saved
        return gy * (t * t)


class Shrink(Function):
    """hardshrink: y = x where x < -lambd or x > lambd, else 0;
    softshrink: y = x - lambd where x > lambd, x + lambd where x < -lambd, else 0.
    Gradient (both): gx = gy where x < -lambd or x > lambd, else 0 (0 at x = +-lambd, as in
    PyTorch). NaN stays NaN and passes its gradient on, as in PyTorch."""

    def __init__(self, lambd, soft):
        self.lambd, self.soft = lambd, soft

    def forward(self, x):
        xp = backend.xp_of(x)
        keep = ~((x >= -self.lambd) & (x <= self.lambd))   # NaN kept (and passed on), as PyTorch
        self.save_for_backward(keep)
        zero = x.dtype.type(0)
        if not self.soft:
            return xp.where(keep, x, zero)
        return xp.where(keep, x - xp.sign(x) * self.lambd, zero).astype(x.dtype, copy=False)

    def backward(self, gy):
        (keep,) = self.saved
        return backend.xp_of(gy).where(keep, gy, gy.dtype.type(0))


def prelu(input, weight):
    """input if positive, else weight * input, with ``weight`` a 1-D tensor of one slope
    (shared) or one per channel (dim 1 of ``input``; an input of fewer than 2 dims has one
    channel)."""
    check_float("prelu", "input", input)
    check_float("prelu", "weight", weight)
    if weight.ndim > 1:
        raise ValueError(f"prelu: 'weight' must be 0-D or 1-D, got shape {weight.shape}")
    if weight.dtype != input.dtype:
        raise TypeError(f"prelu: 'weight' has dtype {weight.dtype}, 'input' {input.dtype}")
    C = input.shape[1] if input.ndim >= 2 else 1
    n = weight.numel()
    if n not in (1, C):
        raise ValueError(f"prelu: 'weight' has {n} entries, expected 1 or the number of "
                         f"channels of 'input' ({C}, dim 1 of shape {input.shape})")
    if n == 1 or input.ndim < 2:
        shape = ()
    else:
        shape = (1, C) + (1,) * (input.ndim - 2)
    return PReLU(shape, weight.shape)(input, weight)


def logsigmoid(input):
    """log(sigmoid(input)), finite for any input."""
    return LogSigmoid()(check_float("logsigmoid", "input", input))


def softsign(input):
    """input / (1 + |input|)."""
    return Softsign()(check_float("softsign", "input", input))


def tanhshrink(input):
    """input - tanh(input)."""
    return Tanhshrink()(check_float("tanhshrink", "input", input))


def softshrink(input, lambd=0.5):
    """input - lambd above lambd, input + lambd below -lambd, 0 between (lambd >= 0)."""
    check_float("softshrink", "input", input)
    return Shrink(check_number("softshrink", "lambd", lambd, 0), True)(input)


def hardshrink(input, lambd=0.5):
    """input where |input| > lambd, else 0."""
    check_float("hardshrink", "input", input)
    return Shrink(check_number("hardshrink", "lambd", lambd), False)(input)
