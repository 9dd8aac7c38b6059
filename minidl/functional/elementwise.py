"""Elementwise arithmetic: + - * / ** neg abs clip maximum minimum where lerp, casts and device
moves (the unary math functions, exp log sqrt and the like, are in ``unary.py``).

Binary ops broadcast like NumPy; their backward sums each gradient back to its input's shape
(``sum_to``). Python numbers may stand for either operand and get no gradient.

Result dtypes follow PyTorch's promotion, not NumPy's (``_promoted``): the operands' highest
category (bool < integer < floating) decides, and within it tensors with dimensions outrank
0-d tensors, which outrank Python numbers. So a float32 tensor stays float32 with an int64
tensor, a float64 0-d tensor or a Python float, and an integer tensor with a Python float
becomes float32 (NumPy would give float64 in each case). Operands are cast before the op, by
the differentiable ``Cast``, so each gradient arrives in its input's own dtype.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from .._checks import check_number
from ..autograd import Function
from ..kernels import threads
from ..tensor import _DEFAULT_FLOAT, Tensor
from ._utils import (as_operand, blockwise, check_broadcast, check_float, check_tensor,
                     kept_for_backward, sum_to, type_name)


def _shape(x):
    return x.shape if hasattr(x, "shape") else ()


class Add(Function):
    """y = a + b.  Gradient: ga = sum_to(gy, a.shape), gb = sum_to(gy, b.shape)."""

    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        if (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and not backend._is_cupy_array(a)):
            return threads.ufunc(np.add, a, b)            # on the host threads
        return a + b

    def backward(self, gy):
        ga = sum_to(gy, self.shapes[0]) if self.needs_input_grad[0] else None
        gb = sum_to(gy, self.shapes[1]) if self.needs_input_grad[1] else None
        return ga, gb


class Sub(Function):
    """y = a - b.  Gradient: ga = sum_to(gy, a.shape), gb = -sum_to(gy, b.shape)."""

    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return a - b

    def backward(self, gy):
        ga = sum_to(gy, self.shapes[0]) if self.needs_input_grad[0] else None
        gb = -sum_to(gy, self.shapes[1]) if self.needs_input_grad[1] else None
        return ga, gb


class Mul(Function):
    """y = a * b.  Gradient: ga = sum_to(gy * b, a.shape), gb = sum_to(gy * a, b.shape)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b.  Gradient: ga = sum_to(gy / b), gb = sum_to(-gy * a / b**2) = sum_to(-gy*y/b)."""

    def forward(self, a, b):
        y = a / b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        gyb = gy / b
        ga = sum_to(gyb, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gyb * y, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """y = a ** b.  Gradient: ga = gy * b * a**(b-1) (0 where b = 0, also at a = 0, where
    the formula reads 0 * inf), gb = gy * y * log(a) (taken as 0 where a <= 0, where the real
    logarithm does not exist)."""

    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        ga = gb = None
        if self.needs_input_grad[0]:
            if isinstance(b, (int, float)):
                d = backend.xp_of(a).zeros_like(a) if b == 0 else b * a ** (b - 1)
            else:
                xp = backend.xp_of(b)
                with np.errstate(divide="ignore", invalid="ignore"):
                    d = xp.where(b == 0, 0, b * a ** (b - 1)).astype(gy.dtype, copy=False)
            ga = sum_to(gy * d, a.shape)
        if self.needs_input_grad[1]:
            if isinstance(a, (int, float)):
                log_a = math.log(a) if a > 0 else 0.0
            else:
                xp = backend.xp_of(a)
                log_a = xp.where(a > 0, xp.log(xp.where(a > 0, a, 1)), 0).astype(a.dtype)
            gb = sum_to(gy * y * log_a, b.shape)
        return ga, gb


class Neg(Function):
    """y = -x.  Gradient: gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Abs(Function):
    """y = |x|.  Gradient: gx = gy * sign(x) (0 at x = 0, as in PyTorch)."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.xp_of(x).abs(x)

    def backward(self, gy):
        return gy * backend.xp_of(gy).sign(self.saved[0])


_BLOCK = 1 << 16      # values per block of a host pass chain (its temporaries in cache)


def _flat(x, *others):
    """1-D views of host arrays of one shape listing their values in x's memory order, or None
    when one of them is laid out otherwise (or holds no value)."""
    if x.size == 0:
        return None
    order = np.argsort(-np.abs(np.asarray(x.strides)), kind="stable")
    views = []
    for a in (x,) + others:
        t = a.transpose(order)
        if not t.flags.c_contiguous:
            return None
        views.append(t.reshape(-1))
    return views


def _inside(x, lo, hi, strict):
    """Where lo < x < hi (``strict``) or lo <= x <= hi, as a bool array; a None bound is open
    (None when both are)."""
    m = None
    if lo is not None:
        m = x > lo if strict else x >= lo
    if hi is not None:
        t = x < hi if strict else x <= hi
        m = t if m is None else m & t
    return m


def band_grad(gy, x, lo, hi, strict):
    """The gradient through a clip of x to [lo, hi]: gy where x is inside (``_inside``), else
    0. On the host, in memory order, in blocks of ``_BLOCK`` values on the host threads."""
    flat = None
    if backend.xp_of(gy) is np and gy.shape == x.shape:
        out = np.empty_like(x, dtype=gy.dtype)
        flat = _flat(x, gy, out)
    if flat is None:
        m = _inside(x, lo, hi, strict)
        return gy.copy() if m is None else gy * m
    xf, gf, of = flat

    def block(a, b):
        m = _inside(xf[a:b], lo, hi, strict)
        if m is None:
            of[a:b] = gf[a:b]
        else:
            np.multiply(gf[a:b], m, out=of[a:b])

    blockwise(np, block, xf.size, _BLOCK)
    return out


class Clip(Function):
    """y = min(max(x, lo), hi).  Gradient: gx = gy where lo <= x <= hi, else 0."""

    strict = False        # Hardtanh: no gradient at the bounds themselves

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.save_for_backward(x)
        xp = backend.xp_of(x)
        y = np.empty_like(x) if xp is np else None
        flat = None if y is None else _flat(x, y)
        if flat is None:
            return xp.clip(x, self.lo, self.hi)
        xf, yf = flat

        def block(a, b):                   # in memory order, blocks on the host threads
            np.clip(xf[a:b], self.lo, self.hi, out=yf[a:b])

        blockwise(np, block, xf.size, _BLOCK)
        return y

    def backward(self, gy):
        return band_grad(gy, self.saved[0], self.lo, self.hi, self.strict)


class Maximum(Function):
    """y = max(a, b) elementwise.  Gradient: gy goes to the larger input; on ties each input
    gets gy / 2 (PyTorch's convention, which keeps the gradient symmetric); where either is
    NaN (so is y), both get gy, as in PyTorch."""

    sign = 1

    def forward(self, a, b):
        self.save_for_backward(a, b)
        xp = backend.xp_of(a)
        return xp.maximum(a, b) if self.sign > 0 else xp.minimum(a, b)

    def backward(self, gy):
        a, b = self.saved
        xp = backend.xp_of(gy)
        wins = (a > b) if self.sign > 0 else (a < b)
        share = gy * wins + (gy * 0.5) * (a == b)          # b's share is gy - share: all of
        ga = None                                          # gy where a NaN left both out
        if self.needs_input_grad[0]:
            ga = share + gy * (xp.isnan(a) | xp.isnan(b)) if gy.dtype.kind == "f" else share
            ga = sum_to(ga, a.shape)
        gb = sum_to(gy - share, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Minimum(Maximum):
    """y = min(a, b) elementwise.  Gradient: gy goes to the smaller input; ties split gy / 2."""

    sign = -1


class Where(Function):
    """y = cond ? a : b.  Gradient: ga = sum_to(gy * cond), gb = sum_to(gy * !cond)."""

    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return backend.xp_of(self.cond).where(self.cond, a, b)

    def backward(self, gy):
        zero = gy.dtype.type(0)
        xp = backend.xp_of(gy)
        ga = sum_to(xp.where(self.cond, gy, zero), self.shapes[0]) \
            if self.needs_input_grad[0] else None
        gb = sum_to(xp.where(self.cond, zero, gy), self.shapes[1]) \
            if self.needs_input_grad[1] else None
        return ga, gb


class Lerp(Function):
    """y = a + w (b - a) (linear interpolation, broadcasting; w a tensor or a number), computed
    as b - (b - a)(1 - w) where |w| >= 0.5 so that w = 1 gives b exactly.
    Gradient: ga = sum_to(gy (1 - w)), gb = sum_to(gy w), gw = sum_to(gy (b - a))."""

    def forward(self, a, b, w):
        self.save_for_backward(a, b, w)
        d = b - a
        if isinstance(w, (int, float)):
            return a + w * d if -0.5 < w < 0.5 else b - d * (1.0 - w)
        xp = backend.xp_of(d)         # (this module's abs is the Tensor op)
        return xp.where(xp.abs(w) < 0.5, a + w * d, b - d * (1.0 - w))

    def backward(self, gy):
        a, b, w = self.saved
        ga = sum_to(gy * (1.0 - w), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * w, b.shape) if self.needs_input_grad[1] else None
        gw = sum_to(gy * (b - a), w.shape) if self.needs_input_grad[2] else None
        return ga, gb, gw


class Cast(Function):
    """y = x converted to another dtype.  Gradient: gx = gy converted back to x's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.src)


class ToDevice(Function):
    """y = x copied to another device.  Gradient: gx = gy copied back to x's device."""

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.src = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.src)


# ---------------------------------------------------------------------------------------------
# type promotion (PyTorch's rules; see the module docstring)

def _category(dtype):
    return {"b": 0, "u": 1, "i": 1, "f": 2}.get(dtype.kind, 3)


def _number_dtype(x):
    """The dtype a Python number takes where it decides the result's category."""
    if isinstance(x, bool):
        return np.dtype(np.bool_)
    if isinstance(x, int):
        return np.dtype(np.int64)
    if isinstance(x, float):
        return _DEFAULT_FLOAT
    return np.dtype(np.complex64)


def _promote(dtypes):
    """PyTorch's promote_types over ``dtypes``: a higher category wins outright (float32 with
    int64 is float32), within one category the wider type (NumPy's rule there)."""
    r = dtypes[0]
    for d in dtypes[1:]:
        if _category(d) > _category(r):
            r = d
        elif _category(d) == _category(r):
            r = np.promote_types(r, d)
    return r


def result_dtype(*operands, floating=False):
    """The dtype PyTorch gives an elementwise op on ``operands`` (Tensors and Python numbers);
    with ``floating`` (true division) an integer or bool result becomes float32."""
    tensors = [x for x in operands if isinstance(x, Tensor)]
    dims = [x.dtype for x in tensors if x.ndim > 0]
    zeros = [x.dtype for x in tensors if x.ndim == 0]
    r = _promote(dims) if dims else None
    if zeros:
        z = _promote(zeros)
        if r is None:
            r = z
        elif _category(z) > _category(r):
            r = _promote([r, z])
    for x in operands:
        if not isinstance(x, Tensor):
            n = _number_dtype(x)
            if r is None:
                r = n if _category(n) >= 1 else np.dtype(np.bool_)
            elif _category(n) > _category(r):
                r = n
    if floating and _category(r) < 2:
        r = _DEFAULT_FLOAT
    return r


def _promoted(operands, floating=False):
    """``operands`` with every Tensor cast (differentiably) to ``result_dtype``."""
    dts = {x.dtype for x in operands if isinstance(x, Tensor)}
    if len(dts) == 1 and not floating and all(
            isinstance(x, Tensor) or _category(_number_dtype(x)) <= _category(next(iter(dts)))
            for x in operands):
        return operands                                      # the common case: nothing to do
    r = result_dtype(*operands, floating=floating)
    return [Cast(r)(x) if isinstance(x, Tensor) and x.dtype != r else x for x in operands]


# ---------------------------------------------------------------------------------------------
# public wrappers

def _binary(op, cls, a, b, floating=False):
    a = as_operand(op, "input", a)
    b = as_operand(op, "other", b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: at least one argument must be a Tensor, got "
                        f"{type(a).__name__} and {type(b).__name__}")
    check_broadcast(op, a, b)
    a, b = _promoted([a, b], floating)
    try:
        return cls()(a, b)
    except OverflowError:
        t, n = (a, b) if isinstance(a, Tensor) else (b, a)
        raise ValueError(f"{op}: the number {n!r} does not fit the tensor's dtype "
                         f"{t.dtype}") from None


def add(input, other, *, alpha=1):
    """input + alpha * other, broadcasting."""
    return _binary("add", Add, input, _scaled("add", other, alpha))


def sub(input, other, *, alpha=1):
    """input - alpha * other, broadcasting."""
    if all(isinstance(x, (bool, np.bool_)) or (isinstance(x, Tensor) and x.dtype.kind == "b")
           for x in (input, other)):
        raise TypeError("sub: subtracting two bool operands is not supported (as in "
                        "PyTorch); use ^ or logical_xor, or convert them first")
    return _binary("sub", Sub, input, _scaled("sub", other, alpha))


def _scaled(op, other, alpha):
    """alpha * other for add's and sub's ``alpha`` (PyTorch's), other itself for 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, (numbers.Real, np.number)):
        raise TypeError(f"{op}: 'alpha' must be a number, got {type(alpha).__name__}")
    if alpha == 1:
        return other
    return mul(other, alpha) if isinstance(other, Tensor) else other * alpha


def mul(input, other):
    """input * other, broadcasting."""
    return _binary("mul", Mul, input, other)


def div(input, other):
    """input / other (true division), broadcasting; integer operands give float32."""
    return _binary("div", Div, input, other, floating=True)


def pow(input, exponent):
    """input ** exponent; either may be a number."""
    for name, x in (("input", input), ("exponent", exponent)):
        if isinstance(x, Tensor) and x.requires_grad:
            check_float("pow", name, x)
    try:
        return _binary("pow", Pow, input, exponent)
    except ValueError as exc:
        if "negative integer powers" not in str(exc):
            raise
        raise ValueError("pow: integers to negative integer powers are not supported; "
                         "convert the base to a floating dtype first") from None


def neg(input):
    """-input."""
    check_tensor("neg", "input", input)
    if input.dtype.kind == "b":
        raise TypeError("neg: negating a bool tensor is not supported (as in PyTorch); to "
                        "invert a mask use ~ or logical_not")
    return Neg()(input)


def abs(input):
    """Absolute value."""
    return Abs()(check_tensor("abs", "input", input))


def clip(input, min=None, max=None):
    """Clamp into [min, max] (either bound may be None; numbers, or Tensors that broadcast
    to input's shape: see ``clamp_bounds``)."""
    check_tensor("clip", "input", input)
    if min is None and max is None:
        raise ValueError("clip: at least one of 'min' and 'max' must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        from .clamp_bounds import clamp_tensors  # noqa: PLC0415
        return clamp_tensors(input, min, max)
    for name, v in (("min", min), ("max", max)):
        if v is not None:
            check_number("clip", name, v, or_none=True)
    min, max = (v.item() if isinstance(v, (np.generic, np.ndarray)) else v for v in (min, max))
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: 'min' ({min}) must not exceed 'max' ({max})")
    (input,) = _promoted([input] + [v for v in (min, max) if v is not None])[:1]
    return Clip(min, max)(input)


clamp = clip


def maximum(input, other):
    """Elementwise maximum, broadcasting (ties share the gradient equally)."""
    return _binary("maximum", Maximum, input, other)


def minimum(input, other):
    """Elementwise minimum, broadcasting (ties share the gradient equally)."""
    return _binary("minimum", Minimum, input, other)


def where(condition, input=None, other=None):
    """Pick ``input`` where ``condition`` is true, else ``other`` (all broadcast together);
    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``, as in PyTorch."""
    if input is None and other is None:
        from .indexing import nonzero  # noqa: PLC0415 (indexing imports this module)
        return nonzero(condition, as_tuple=True)
    cond = condition.data if isinstance(condition, Tensor) else condition
    if not hasattr(cond, "dtype") or cond.dtype.kind != "b":
        raise TypeError(f"where: 'condition' must be a boolean tensor, got "
                        f"{getattr(cond, 'dtype', type(cond).__name__)}")
    input = as_operand("where", "input", input)
    other = as_operand("where", "other", other)
    shapes = [tuple(cond.shape)] + [x.shape for x in (input, other) if isinstance(x, Tensor)]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"where: shapes {shapes} (condition, input, other) cannot be "
                         "broadcast together") from None
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(backend.xp_of(cond).asarray(input, dtype=result_dtype(input, other)))
    input, other = _promoted([input, other])
    return Where(kept_for_backward(cond, condition, input, other))(input, other)


def cast(input, dtype):
    """Differentiable dtype conversion (``Tensor.to(dtype)``)."""
    return Cast(dtype)(check_tensor("cast", "input", input))


def to_device(input, device):
    """Differentiable copy to another device (``Tensor.to(device)``)."""
    return ToDevice(device)(check_tensor("to_device", "input", input))


def lerp(input, end, weight):
    """input + weight * (end - input), all three broadcast together; ``weight`` is a tensor
    or a number. The operands are promoted like a binary op's and must give a floating type."""
    check_tensor("lerp", "input", input)
    check_tensor("lerp", "end", end)
    weight = as_operand("lerp", "weight", weight)
    shapes = [x.shape for x in (input, end, weight) if isinstance(x, Tensor)]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"lerp: shapes {shapes} (input, end, weight) cannot be broadcast "
                         "together") from None
    r = result_dtype(input, end, weight)
    if r.kind != "f":
        raise TypeError(f"lerp: needs floating-point operands, got {input.dtype}, {end.dtype} "
                        f"and weight {type_name(weight)} (convert with .float())")
    return Lerp()(*_promoted([input, end, weight]))
