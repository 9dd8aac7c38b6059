"""Padding layers (PyTorch's names): ZeroPad, ConstantPad, ReflectionPad, ReplicationPad and
CircularPad for 1, 2 and 3 spatial dims, thin wrappers over ``F.pad``.

``padding`` is an int (the same on every side) or a tuple of 2 * dims ints in ``F.pad``'s
order: (left, right) for 1d, (left, right, top, bottom) for 2d, then (front, back) for 3d.
"""
from __future__ import annotations

import numbers

from .. import functional as F
from .._checks import check_number
from .module import Module


def _padding(name, dims, padding):
    """``padding`` as a tuple of 2 * dims ints (TypeError/ValueError naming the layer)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * (2 * dims)
    if (not isinstance(padding, (tuple, list)) or len(padding) != 2 * dims or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding)):
        raise TypeError(f"{name}: 'padding' must be an int or a tuple of {2 * dims} ints, "
                        f"got {padding!r}")
    return tuple(int(p) for p in padding)


class _Pad(Module):
    """F.pad(x, padding, mode) over the last ``dims`` dims."""

    mode = "constant"
    dims = 2

    def __init__(self, padding):
        super().__init__()
        self.padding = _padding(type(self).__name__, self.dims, padding)

    def forward(self, x):
        return F.pad(x, self.padding, self.mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPad(_Pad):
    """Fill the border with ``value``; negative widths crop."""

    def __init__(self, padding, value):
        super().__init__(padding)
        check_number(type(self).__name__, "value", value)
        self.value = value

    def forward(self, x):
        return F.pad(x, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPad):
    dims = 1


class ConstantPad2d(_ConstantPad):
    dims = 2


class ConstantPad3d(_ConstantPad):
    dims = 3


class _ZeroPad(_ConstantPad):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad1d(_ZeroPad):
    dims = 1


class ZeroPad2d(_ZeroPad):
    dims = 2


class ZeroPad3d(_ZeroPad):
    dims = 3


class ReflectionPad1d(_Pad):
    """Mirror the input at its edges (the edge entry itself not repeated)."""
    mode, dims = "reflect", 1


class ReflectionPad2d(ReflectionPad1d):
    dims = 2


class ReflectionPad3d(ReflectionPad1d):
    dims = 3


class ReplicationPad1d(_Pad):
    """Repeat the edge entries."""
    mode, dims = "replicate", 1


class ReplicationPad2d(ReplicationPad1d):
    dims = 2


class ReplicationPad3d(ReplicationPad1d):
    dims = 3


class CircularPad1d(_Pad):
    """Wrap around: the left border copies the right end, and so on."""
    mode, dims = "circular", 1


class CircularPad2d(CircularPad1d):
    dims = 2


class CircularPad3d(CircularPad1d):
    dims = 3
