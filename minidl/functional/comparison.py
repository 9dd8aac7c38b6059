"""Comparisons and value tests, outside the graph (bool results, no gradient):
eq ne lt le gt ge (the operators ``== != < <= > >=``), isnan isinf isfinite, isclose,
allclose and equal (the last two give Python bools, as in PyTorch), the logical and bitwise
ops (the operators ``~ & | ^``); and ``clone``, the differentiable copy (``contiguous`` uses
it).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from .._checks import check_bool, check_number
from ..autograd import Function
from ..tensor import Tensor
from ._utils import check_broadcast, check_tensor
from .elementwise import result_dtype


def _is_operand(x):
    """Whether ``x`` can be compared with a tensor: a Tensor, a real number or bool, an array."""
    return isinstance(x, (Tensor, numbers.Real, np.generic, np.ndarray)) or \
        backend._is_cupy_array(x)


def _operand(op, input, other):
    """``other`` as a raw array or number on ``input``'s device, or a clear error."""
    if not _is_operand(other) or isinstance(other, (np.complexfloating, np.str_, np.bytes_)):
        raise TypeError(f"{op}: argument 'other' must be a Tensor or a number, got "
                        f"{type(other).__name__}")
    b = other.data if isinstance(other, Tensor) else other
    if hasattr(b, "shape") and not isinstance(b, np.generic):
        if backend.device_of(b) != input.device:
            raise RuntimeError(f"{op}: the operands are on different devices ({input.device} "
                               f"and {backend.device_of(b)}); move them with .to(device)")
    check_broadcast(op, input, b)
    return b


def _named(op, ufunc, input, other):
    """input <op> other, both tensors first converted to the dtype PyTorch's promotion gives
    them (as the arithmetic ops do: a float32 tensor equals a float64 0-d tensor holding the
    same float32 value); Python numbers compare as they are."""
    check_tensor(op, "input", input)
    b = _operand(op, input, other)
    a = input.data
    if isinstance(other, Tensor):
        r = result_dtype(input, other)
        a, b = a.astype(r, copy=False), b.astype(r, copy=False)
    elif a.dtype.kind in "iu" and isinstance(b, (int, np.integer)) and not isinstance(
            b, (bool, np.bool_)) and not np.iinfo(a.dtype).min <= b <= np.iinfo(a.dtype).max:
        # an int the dtype cannot hold: CuPy 14 raises OverflowError (NEP 50), so compare in
        # int64 (uint8 == 300 is False, as NumPy says)
        a = a.astype(np.int64)
    return Tensor(getattr(backend.xp_of(input.data), ufunc)(a, b))


def eq(input, other):
    """input == other elementwise, broadcasting (a bool tensor)."""
    return _named("eq", "equal", input, other)


def ne(input, other):
    """input != other elementwise (a bool tensor)."""
    return _named("ne", "not_equal", input, other)


def lt(input, other):
    """input < other elementwise (a bool tensor)."""
    return _named("lt", "less", input, other)


def le(input, other):
    """input <= other elementwise (a bool tensor)."""
    return _named("le", "less_equal", input, other)


def gt(input, other):
    """input > other elementwise (a bool tensor)."""
    return _named("gt", "greater", input, other)


def ge(input, other):
    """input >= other elementwise (a bool tensor)."""
    return _named("ge", "greater_equal", input, other)


def _test(op, input):
    check_tensor(op, "input", input)
    xp = backend.xp_of(input.data)
    if input.dtype.kind != "f":                  # integers and bools are always finite
        return Tensor(xp.full(input.shape, op == "isfinite", dtype=np.bool_))
    return Tensor(getattr(xp, op)(input.data))


def isnan(input):
    """Where ``input`` is NaN (a bool tensor)."""
    return _test("isnan", input)


def isinf(input):
    """Where ``input`` is +inf or -inf (a bool tensor)."""
    return _test("isinf", input)


def isfinite(input):
    """Where ``input`` is neither inf nor NaN (a bool tensor)."""
    return _test("isfinite", input)


def _isclose(op, input, other, rtol, atol, equal_nan):
    check_tensor(op, "input", input)
    b = _operand(op, input, other)
    check_number(op, "rtol", rtol, 0)
    check_number(op, "atol", atol, 0)
    check_bool(op, "equal_nan", equal_nan)
    xp = backend.xp_of(input.data)
    a = input.data
    if a.dtype.kind != "f" and getattr(b, "dtype", np.dtype(type(b))).kind != "f":
        a, b = a.astype(np.float64), xp.asarray(b, dtype=np.float64)   # no unsigned wrap
    close = a == b
    with np.errstate(invalid="ignore", over="ignore"):
        diff = xp.abs(a - b)
        close = close | (xp.isfinite(diff) & (diff <= atol + rtol * xp.abs(b)))
    if equal_nan:
        close = close | (xp.isnan(a) & xp.isnan(b))
    return Tensor(close)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol |other| elementwise (a bool tensor). Infinities are close
    only to themselves; NaNs to each other only with ``equal_nan``."""
    return _isclose("isclose", input, other, rtol, atol, equal_nan)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether ``isclose`` holds everywhere: a Python bool (reads the result back)."""
    close = _isclose("allclose", input, other, rtol, atol, equal_nan)
    return bool(Tensor(close.data.all()).item())


def equal(input, other):
    """Whether two tensors have the same shape and the same values: a Python bool (NaN is
    never equal to itself, as in PyTorch)."""
    check_tensor("equal", "input", input)
    check_tensor("equal", "other", other)
    if input.shape != other.shape:
        return False
    return bool(Tensor(_named("equal", "equal", input, other).data.all()).item())


def _logical(op, input, other=None):
    """``input`` (and ``other``) as bool arrays: nonzero is True, as PyTorch's logical ops
    read any dtype."""
    check_tensor(op, "input", input)
    xp = backend.xp_of(input.data)
    a = input.data.astype(bool, copy=False)
    if other is None:
        return xp, a, None
    b = _operand(op, input, other)
    return xp, a, (b.astype(bool, copy=False) if hasattr(b, "astype") else bool(b))


def logical_not(input):
    """not input, elementwise (a bool tensor; nonzero is True)."""
    xp, a, _ = _logical("logical_not", input)
    return Tensor(xp.logical_not(a))


def logical_and(input, other):
    """input and other, elementwise, broadcasting (a bool tensor; nonzero is True)."""
    xp, a, b = _logical("logical_and", input, other)
    return Tensor(xp.logical_and(a, b))


def logical_or(input, other):
    """input or other, elementwise, broadcasting (a bool tensor)."""
    xp, a, b = _logical("logical_or", input, other)
    return Tensor(xp.logical_or(a, b))


def logical_xor(input, other):
    """input xor other, elementwise, broadcasting (a bool tensor)."""
    xp, a, b = _logical("logical_xor", input, other)
    return Tensor(xp.logical_xor(a, b))


def _bitwise(op, ufunc, input, other=None):
    """The operators ``~ & | ^``: bitwise on bool and integer tensors (on bool, the logical
    ops), promoted as the arithmetic ops are; float operands are refused, as in PyTorch."""
    check_tensor(op, "input", input)
    operands = [input] if other is None else [input, other]
    for name, x in zip(("input", "other"), operands):
        kind = x.dtype.kind if isinstance(x, Tensor) else np.asarray(x).dtype.kind
        if kind not in "biu" or isinstance(x, np.floating):
            what = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{op}: '{name}' must be a bool or integer tensor or number, got "
                            f"{what}")
    xp = backend.xp_of(input.data)
    if other is None:
        return Tensor(getattr(xp, ufunc)(input.data))
    b = _operand(op, input, other)
    r = result_dtype(input, other)
    b = b.astype(r, copy=False) if hasattr(b, "astype") else b
    return Tensor(getattr(xp, ufunc)(input.data.astype(r, copy=False), b).astype(r, copy=False))


def bitwise_not(input):
    """~input: bitwise not of an integer tensor, logical not of a bool one."""
    return _bitwise("bitwise_not", "invert", input)


def bitwise_and(input, other):
    """input & other (bool or integer, broadcasting)."""
    return _bitwise("bitwise_and", "bitwise_and", input, other)


def bitwise_or(input, other):
    """input | other (bool or integer, broadcasting)."""
    return _bitwise("bitwise_or", "bitwise_or", input, other)


def bitwise_xor(input, other):
    """input ^ other (bool or integer, broadcasting)."""
    return _bitwise("bitwise_xor", "bitwise_xor", input, other)


class Clone(Function):
    """y = a copy of x in memory of its own (C order).  Gradient: gx = gy."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def clone(input):
    """A differentiable copy of ``input`` (it shares no memory with it)."""
    return Clone()(check_tensor("clone", "input", input))


def contiguous(input):
    """``input`` itself when its memory is C-contiguous, else a C-contiguous ``clone``."""
    check_tensor("contiguous", "input", input)
    return input if input.data.flags.c_contiguous else clone(input)
