"""Reductions over axes: sum, mean, max, min, var, std (and argmax/argmin, not differentiable).

``dim`` is None (all axes), an int or a tuple of ints; ``keepdim`` keeps reduced axes as size 1.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from ._utils import check_float, check_tensor, normalize_dim, normalize_dims


def _expand_back(gy, in_shape, axes, keepdim):
    """Broadcast a reduced gradient back over the reduced axes (a view, no copy)."""
    if not keepdim:
        shape = list(in_shape)
        for a in axes:
            shape[a] = 1
        gy = gy.reshape(shape)
    return backend.xp_of(gy).broadcast_to(gy, in_shape)


class Sum(Function):
    """y = sum of x over ``axes``.  Gradient: gx = gy broadcast back over the summed axes."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        return _expand_back(gy, self.in_shape, self.axes, self.keepdim)


class Mean(Function):
    """y = mean of x over ``axes`` (n elements each).  Gradient: gx = broadcast(gy) / n."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        n = 1
        for a in self.axes:
            n *= self.in_shape[a]
        return _expand_back(gy * (1.0 / n if n else float("nan")), self.in_shape, self.axes,
                            self.keepdim)


class Max(Function):
    """y = max of x over ``axes``.  Gradient: gy flows to the elements equal to the maximum;
    when several tie, they share it equally (so the gradient stays a valid subgradient)."""

    mode = "max"

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        y = x.max(axis=self.axes, keepdims=True) if self.mode == "max" else \
            x.min(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if self.keepdim else y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        x, y = self.saved
        hit = x == y
        count = hit.sum(axis=self.axes, keepdims=True).astype(x.dtype)
        gy = _expand_back(gy, y.shape, (), True) if self.keepdim else gy.reshape(y.shape)
        return hit * (gy / count)


class Min(Max):
    """y = min of x over ``axes``.  Gradient: as for max, to the minimal elements (ties share)."""

    mode = "min"


class Var(Function):
    """y = sum((x - mean)^2) / (n - ddof) over ``axes`` (ddof = 1 when unbiased).
    Gradient: gx = gy * 2 (x - mean) / (n - ddof)."""

    def __init__(self, axes, keepdim, ddof):
        self.axes, self.keepdim, self.ddof = axes, keepdim, ddof

    def forward(self, x):
        centered = x - x.mean(axis=self.axes, keepdims=True)
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        denom = n - self.ddof
        self.scale = 1.0 / denom if denom > 0 else float("nan")   # as PyTorch: nan, not inf
        self.save_for_backward(centered)
        self.in_shape = x.shape
        # half precision sums its squares in float32 (float16 overflows past 65504)
        acc = np.float32 if x.dtype == np.float16 else None
        total = (centered * centered).sum(axis=self.axes, keepdims=self.keepdim, dtype=acc)
        return (total * self.scale).astype(x.dtype, copy=False)

    def backward(self, gy):
        (centered,) = self.saved
        return _expand_back(gy, self.in_shape, self.axes, self.keepdim) * (
            centered * (2.0 * self.scale))


class Std(Var):
    """y = sqrt(var) over ``axes``.
    Gradient: gx = gy * (x - mean) / ((n - ddof) * y), and 0 where y = 0 (a constant slice,
    where sqrt has no derivative; PyTorch also gives 0 there rather than NaN)."""

    def forward(self, x):
        y = backend.xp_of(x).sqrt(super().forward(x))
        self.y = y
        return y

    def backward(self, gy):
        (centered,) = self.saved
        xp = backend.xp_of(gy)
        y = self.y
        safe = xp.where(y == 0, 1, y)
        k = xp.where(y == 0, 0, gy / safe).astype(gy.dtype, copy=False)
        return _expand_back(k, self.in_shape, self.axes, self.keepdim) * (centered * self.scale)


def _reduce_args(op, input, dim):
    check_tensor(op, "input", input)
    axes = normalize_dims(op, dim, input.ndim)         # checked for a 0-d input too
    return axes if input.ndim else ()


def sum(input, dim=None, keepdim=False):
    """Sum over ``dim`` (all axes when None)."""
    return Sum(_reduce_args("sum", input, dim), keepdim)(input)


def mean(input, dim=None, keepdim=False):
    """Mean over ``dim`` (all axes when None)."""
    check_float("mean", "input", input)
    return Mean(_reduce_args("mean", input, dim), keepdim)(input)


def _check_nonempty(op, input, axes):
    for a in axes:
        if input.shape[a] == 0:
            raise ValueError(f"{op}: cannot reduce over an empty dimension {a} "
                             f"(input shape {input.shape})")


def max(input, dim=None, keepdim=False):
    """Maximum over ``dim`` (values only; use ``argmax`` for positions)."""
    axes = _reduce_args("max", input, dim)
    _check_nonempty("max", input, axes)
    return Max(axes, keepdim)(input)


def min(input, dim=None, keepdim=False):
    """Minimum over ``dim`` (values only; use ``argmin`` for positions)."""
    axes = _reduce_args("min", input, dim)
    _check_nonempty("min", input, axes)
    return Min(axes, keepdim)(input)


def _ddof(op, unbiased):
    if not isinstance(unbiased, (bool, np.bool_)):
        raise TypeError(f"{op}: 'unbiased' must be a bool, got {type(unbiased).__name__} "
                        f"{unbiased!r} (PyTorch's argument order: dim, unbiased, keepdim)")
    return 1 if unbiased else 0


def var(input, dim=None, unbiased=True, keepdim=False):
    """Variance over ``dim``; divides by n - 1 when ``unbiased`` (PyTorch's default), else n.
    The arguments come in PyTorch's order (dim, unbiased, keepdim)."""
    check_float("var", "input", input)
    return Var(_reduce_args("var", input, dim), keepdim, _ddof("var", unbiased))(input)


def std(input, dim=None, unbiased=True, keepdim=False):
    """Standard deviation, sqrt(var), with var's arguments (see ``Std`` for the gradient)."""
    check_float("std", "input", input)
    return Std(_reduce_args("std", input, dim), keepdim, _ddof("std", unbiased))(input)


def _arg(op, input, dim, keepdim):
    check_tensor(op, "input", input)
    xp = backend.xp_of(input.data)
    fn = xp.argmax if op == "argmax" else xp.argmin
    if dim is None and input.data.size == 0:
        raise ValueError(f"{op}: the input (shape {input.shape}) is empty: there is no position "
                         "to return")
    if dim is not None and input.ndim:
        _check_nonempty(op, input, (normalize_dim(op, dim, input.ndim),))
    if dim is None:
        out = fn(input.data.reshape(-1))
        if keepdim:
            out = out.reshape((1,) * input.ndim)
        return Tensor(out.astype("int64"))
    d = normalize_dim(op, dim, input.ndim)
    out = fn(input.data, axis=d)
    if keepdim:
        out = xp.expand_dims(out, d)
    return Tensor(out.astype("int64"))


def argmax(input, dim=None, keepdim=False):
    """Index of the maximum (first one on ties), over the flattened tensor when dim is None."""
    return _arg("argmax", input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """Index of the minimum (first one on ties)."""
    return _arg("argmin", input, dim, keepdim)
