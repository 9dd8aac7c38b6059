"""Checks of scalar arguments (ints, real numbers, bools), shared by every layer of minidl.

Each returns the value as a Python int, float or bool, or raises an error naming the op, the
argument, what was expected and what was got, in one form:

    conv2d: 'groups' must be a positive int, got float 2.0    TypeError: the wrong type
    conv2d: 'groups' must be a positive int, got 0            ValueError: right type, out of range

A TypeError shows the type and value got, a ValueError the value as read (a Python int or
float). A bool is refused where a number is expected (``True`` is an int to Python, never a size
or a rate here); NumPy scalars count as numbers. This module imports only NumPy, so that every
layer, from ``backend`` up to ``optim`` and ``data``, can use it.
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def _got(value):
    return f"got {type(value).__name__} {value!r}"


def _none(or_none):
    return " or None" if or_none else ""


def check_int(op, name, value, minimum=None, *, or_none=False):
    """``value`` as a Python int: TypeError unless it is an int (Python or NumPy, not a bool),
    ValueError if it is below ``minimum``. ``or_none``: the caller also accepts None (and
    handles it before calling); the message says so."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: '{name}' must be {_int_range(minimum)}{_none(or_none)}, "
                        f"{_got(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: '{name}' must be {_int_range(minimum)}{_none(or_none)}, "
                         f"got {int(value)}")
    return int(value)


def _int_range(minimum):
    if minimum is None:
        return "an int"
    return {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")


def check_number(op, name, value, minimum=None, maximum=None, *, open_min=False,
                 open_max=False, where="", or_none=False):
    """``value`` as a Python float: TypeError unless it is a real number (Python or NumPy, a
    0-d NumPy array too; not a bool), ValueError if it is outside the range the bounds give
    (``open_min``/``open_max`` exclude the bound itself) or, where a bound is given, NaN.
    ``where`` follows the argument's name in the message (e.g. ``" in param group 1"``);
    ``or_none`` as for ``check_int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) and not (
            isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"):
        expected = _number_range(minimum, maximum, open_min, open_max) + _none(or_none)
        raise TypeError(f"{op}: '{name}'{where} must be {expected}, {_got(value)}")
    x = float(value)
    if minimum is None and maximum is None:
        return x
    if (math.isnan(x) or minimum is not None and (x <= minimum if open_min else x < minimum)
            or maximum is not None and (x >= maximum if open_max else x > maximum)):
        expected = _number_range(minimum, maximum, open_min, open_max) + _none(or_none)
        raise ValueError(f"{op}: '{name}'{where} must be {expected}, got {x!r}")
    return x


def _number_range(minimum, maximum, open_min, open_max):
    if minimum is None and maximum is None:
        return "a number"
    if maximum is None:
        if minimum == 0:
            return "a positive number" if open_min else "a non-negative number"
        return f"a number {'>' if open_min else '>='} {minimum:g}"
    if minimum is None:
        return f"a number {'<' if open_max else '<='} {maximum:g}"
    return (f"a number in {'(' if open_min else '['}{minimum:g}, {maximum:g}"
            f"{')' if open_max else ']'}")


def check_bool(op, name, value, *, where="", or_none=False):
    """``value`` (a Python or NumPy bool) as a Python bool, or a TypeError; ``or_none`` as
    for ``check_int``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: '{name}'{where} must be a bool{_none(or_none)}, "
                        f"{_got(value)}")
    return bool(value)
