"""Unary math functions: exp log sqrt log1p expm1 rsqrt reciprocal sin cos square sign.

Each is one ``Function`` whose backward multiplies the upstream gradient by the derivative,
written out in its docstring. Functions with a floating-point result promote integer and bool
inputs to float32 first, as PyTorch does (``elementwise._promoted``); ``square`` keeps integer
dtypes and ``sign`` every dtype.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function
from ._utils import check_tensor
from .elementwise import Cast, _promoted


class Exp(Function):
    """y = exp(x).  Gradient: gx = gy * y."""

    def forward(self, x):
        y = backend.xp_of(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * self.saved[0]


class Log(Function):
    """y = log(x) (natural).  Gradient: gx = gy / x."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).log(x)

    def backward(self, gy):
        return gy / self.saved[0]


class Sqrt(Function):
    """y = sqrt(x).  Gradient: gx = gy / (2 y)."""

    def forward(self, x):
        y = backend.xp_of(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy / (2.0 * self.saved[0])


class Log1p(Function):
    """y = log(1 + x), accurate for small x.  Gradient: gx = gy / (1 + x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).log1p(x)

    def backward(self, gy):
        return gy / (1.0 + self.saved[0])


class Expm1(Function):
    """y = exp(x) - 1, accurate for small x.  Gradient: gx = gy * (y + 1)."""

    def forward(self, x):
        y = backend.xp_of(x).expm1(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * (self.saved[0] + 1.0)


class Square(Function):
    """y = x * x.  Gradient: gx = 2 x gy."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        return (2.0 * gy) * self.saved[0]


class Rsqrt(Function):
    """y = 1 / sqrt(x).  Gradient: gx = -gy / (2 x sqrt(x)) = -0.5 gy y**3."""

    def forward(self, x):
        y = 1.0 / backend.xp_of(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        return (-0.5 * gy) * (y * y * y)


class Reciprocal(Function):
    """y = 1 / x.  Gradient: gx = -gy / x**2 = -gy y**2."""

    def forward(self, x):
        y = 1.0 / x
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        return -gy * (y * y)


class Sin(Function):
    """y = sin(x).  Gradient: gx = gy cos(x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).sin(x)

    def backward(self, gy):
        return gy * backend.xp_of(gy).cos(self.saved[0])


class Cos(Function):
    """y = cos(x).  Gradient: gx = -gy sin(x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).cos(x)

    def backward(self, gy):
        return -gy * backend.xp_of(gy).sin(self.saved[0])


class Sign(Function):
    """y = sign(x) in {-1, 0, 1} (bool stays bool).  Gradient: gx = 0 (a step function's
    derivative is zero wherever it exists), as in PyTorch."""

    def forward(self, x):
        return x.copy() if x.dtype.kind == "b" else backend.xp_of(x).sign(x)

    def backward(self, gy):
        return backend.xp_of(gy).zeros_like(gy)


# ---------------------------------------------------------------------------------------------

def _unary_float(op, cls, input):
    """``cls()(input)`` for a math function with a floating-point result: integer and bool
    inputs are promoted to float32 first, as PyTorch does (``_promoted``)."""
    check_tensor(op, "input", input)
    (input,) = _promoted([input], floating=True)
    return cls()(input)


def exp(input):
    """e ** input; integer inputs give float32."""
    return _unary_float("exp", Exp, input)


def log(input):
    """Natural logarithm; integer inputs give float32."""
    return _unary_float("log", Log, input)


def sqrt(input):
    """Square root; integer inputs give float32."""
    return _unary_float("sqrt", Sqrt, input)


def log1p(input):
    """log(1 + input), accurate near 0; integer inputs give float32."""
    return _unary_float("log1p", Log1p, input)


def expm1(input):
    """exp(input) - 1, accurate near 0; integer inputs give float32."""
    return _unary_float("expm1", Expm1, input)


def rsqrt(input):
    """1 / sqrt(input); integer inputs give float32."""
    return _unary_float("rsqrt", Rsqrt, input)


def reciprocal(input):
    """1 / input; integer inputs give float32."""
    return _unary_float("reciprocal", Reciprocal, input)


def sin(input):
    """Sine (radians); integer inputs give float32."""
    return _unary_float("sin", Sin, input)


def cos(input):
    """Cosine (radians); integer inputs give float32."""
    return _unary_float("cos", Cos, input)


def square(input):
    """input * input, in input's dtype (bool gives int64, as in PyTorch)."""
    check_tensor("square", "input", input)
    if input.dtype.kind == "b":
        input = Cast(np.dtype(np.int64))(input)
    return Square()(input)


def sign(input):
    """-1, 0 or 1 by the sign of each entry, in input's dtype; its gradient is zero."""
    return Sign()(check_tensor("sign", "input", input))
