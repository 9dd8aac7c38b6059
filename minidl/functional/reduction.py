"""Reductions over axes: sum, mean, prod, amax, amin, max, min, var, std, logsumexp, norm,
cumsum (a running sum), all/any and argmax/argmin (the last four not differentiable).

``dim`` is None (all axes), an int or a tuple of ints; ``keepdim`` keeps reduced axes as size 1.
``max``/``min`` follow PyTorch: over everything a 0-d tensor, over one int ``dim`` a named tuple
``(values, indices)`` (``functional.sorting``), with a tensor second argument ``maximum``;
``amax``/``amin`` take several dims and split the gradient among ties.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .._checks import check_bool, check_number
from ..autograd import Function
from ..tensor import Tensor, is_real
from ._utils import cast_to_dtype_arg, check_float, check_tensor, normalize_dim, normalize_dims
from .elementwise import _promoted, maximum, minimum
from .sorting import max_along


def _reduced_shape(shape, axes):
    return tuple(n for i, n in enumerate(shape) if i not in axes)


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
        return x.sum(axis=self.axes, keepdims=self.keepdim, dtype=_int64_if_integer(x))

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


def _int64_if_integer(x):
    """int64 for bool and integer arrays (PyTorch's sums of them; NumPy gives uint64 for
    unsigned ones), None (keep the dtype) for floats."""
    return np.int64 if x.dtype.kind in "biu" else None


class Amax(Function):
    """y = max of x over ``axes``.  Gradient: gy is split evenly among the elements equal to
    the maximum, gx = gy [x == y] / #{x == y} (PyTorch's amax and full max(); a valid
    subgradient when several tie). With ``nan_wins`` (full max()) a NaN result sends the
    gradient to the NaN elements instead, as PyTorch's max() does (amax gives NaNs)."""

    mode = "max"

    def __init__(self, axes, keepdim, nan_wins=False):
        self.axes, self.keepdim, self.nan_wins = axes, keepdim, nan_wins

    def forward(self, x):
        y = x.max(axis=self.axes, keepdims=True) if self.mode == "max" else \
            x.min(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if self.keepdim else y.reshape(_reduced_shape(x.shape, self.axes))

    def backward(self, gy):
        x, y = self.saved
        xp = backend.xp_of(x)
        hit = x == y
        if self.nan_wins:           # full max()/min(): a NaN maximum gets the gradient (PyTorch)
            hit |= xp.isnan(x) & xp.isnan(y)
        count = hit.sum(axis=self.axes, keepdims=True).astype(x.dtype)
        g = hit * (gy.reshape(y.shape) / xp.where(count == 0, 1, count))
        return xp.where(count == 0, xp.nan, g)   # a NaN amax: NaN gradients (PyTorch's 0/0)


class Amin(Amax):
    """y = min of x over ``axes``.  Gradient: as for amax, split among the minimal elements."""

    mode = "min"


class Prod(Function):
    """y = product of x over ``axes``.  Gradient: gx_i = gy prod_{j != i} x_j, formed without
    dividing by zero: y / x_i in a slice with no zero; with exactly one zero, gy times the
    product of the others at the zero and 0 elsewhere; with two or more zeros, 0 everywhere."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        self.save_for_backward(x)
        return x.prod(axis=self.axes, keepdims=self.keepdim, dtype=_int64_if_integer(x))

    def backward(self, gy):
        (x,) = self.saved
        xp = backend.xp_of(x)
        zero = x == 0
        zeros = zero.sum(axis=self.axes, keepdims=True)
        safe = xp.where(zero, 1, x).astype(x.dtype, copy=False)
        rest = safe.prod(axis=self.axes, keepdims=True)          # product of the non-zeros
        with np.errstate(invalid="ignore", divide="ignore"):    # x = inf: inf / inf
            others = xp.where(zeros == 0, rest / safe, xp.where(zero & (zeros == 1), rest, 0))
        return _expand_back(gy, x.shape, self.axes, self.keepdim) * others


class LogSumExp(Function):
    """y = log(sum(exp(x))) over ``axes``, computed as m + log(sum(exp(x - m))) with m the
    (finite) maximum, so large x do not overflow; all -inf gives -inf.
    Gradient: gx = gy exp(x - y), the softmax of x over the axes."""

    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, x):
        xp = backend.xp_of(x)
        if x.size == 0:                     # an empty sum is 0: log 0 = -inf (PyTorch too)
            shape = tuple(1 if i in self.axes else n for i, n in enumerate(x.shape))
            y = xp.full(shape, -np.inf, x.dtype)
            self.save_for_backward(x, y)
            return y if self.keepdim else y.reshape(_reduced_shape(x.shape, self.axes))
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)
        acc = np.float32 if x.dtype == np.float16 else None      # float16 sums overflow
        total = xp.exp(x - m).sum(axis=self.axes, keepdims=True, dtype=acc)
        with np.errstate(divide="ignore"):                        # log(0) = -inf, wanted
            y = (xp.log(total) + m).astype(x.dtype, copy=False)
        self.save_for_backward(x, y)
        return y if self.keepdim else y.reshape(_reduced_shape(x.shape, self.axes))

    def backward(self, gy):
        x, y = self.saved
        return backend.xp_of(x).exp(x - y) * gy.reshape(y.shape)


class Cumsum(Function):
    """y_i = sum_{j <= i} x_j along ``dim``.  Gradient: gx_j = sum_{i >= j} gy_i, a cumulative
    sum of gy taken from the end."""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        self.in_shape = x.shape
        xr = x.reshape(1) if x.ndim == 0 else x
        return backend.xp_of(x).cumsum(xr, axis=self.dim,
                                       dtype=_int64_if_integer(x)).reshape(x.shape)

    def backward(self, gy):
        xp = backend.xp_of(gy)
        g = gy.reshape(1) if gy.ndim == 0 else gy
        return xp.flip(xp.cumsum(xp.flip(g, self.dim), axis=self.dim), self.dim).reshape(
            self.in_shape)


class Norm(Function):
    """y = ||x||_p over ``axes`` = (sum |x|^p)^(1/p); p = inf: max |x|; p = -inf: min |x|;
    p = 0: the number of non-zeros.
    Gradient: p = 1: gx = gy sign(x).  p = 2: gx = gy x / y, and 0 where y = 0 (PyTorch's
    subgradient).  p = +-inf: gy sign(x) split evenly among the |x| equal to y.  p = 0: 0.
    Other p: gx = gy sign(x) |x|^(p-1) / y^(p-1), 0 where y = 0."""

    def __init__(self, axes, keepdim, p):
        self.axes, self.keepdim, self.p = axes, keepdim, p

    def forward(self, x):
        xp = backend.xp_of(x)
        a, p, axes = xp.abs(x), self.p, self.axes
        acc = None
        if x.dtype == np.float16:       # squares and sums of float16 values overflow it early
            a, acc = a.astype(np.float32), np.float32
        if p == math.inf:
            y = a.max(axis=axes, keepdims=True)
        elif p == -math.inf:
            y = a.min(axis=axes, keepdims=True)
        elif p == 0:
            y = (x != 0).sum(axis=axes, keepdims=True)
        elif p == 1:
            y = a.sum(axis=axes, keepdims=True, dtype=acc)
        elif p == 2:
            y = xp.sqrt((a * a).sum(axis=axes, keepdims=True, dtype=acc))
        else:
            y = (a ** p).sum(axis=axes, keepdims=True, dtype=acc) ** (1.0 / p)
        y = y.astype(x.dtype, copy=False)
        self.save_for_backward(x, y)
        return y if self.keepdim else y.reshape(_reduced_shape(x.shape, axes))

    def backward(self, gy):
        x, y = self.saved
        xp = backend.xp_of(x)
        gy, p = gy.reshape(y.shape), self.p
        if p == 0:
            return xp.zeros_like(x)
        if p == 1:
            return xp.sign(x) * gy
        if p in (math.inf, -math.inf):
            hit = xp.abs(x) == y
            return xp.sign(x) * hit * (gy / hit.sum(axis=self.axes, keepdims=True))
        safe = xp.where(y == 0, 1, y).astype(y.dtype, copy=False)
        if p == 2:
            return x * xp.where(y == 0, 0, gy / safe)
        k = xp.where(y == 0, 0, gy / safe ** (p - 1))
        a = xp.abs(x)                   # |x|^(p-1) is inf at 0 for p < 1: sign(x) = 0 wins
        return xp.sign(x) * xp.where(a == 0, 1, a).astype(x.dtype, copy=False) ** (p - 1) * k


class Var(Function):
    """y = sum((x - mean)^2) / max(0, n - ddof) over ``axes`` (ddof = 1 when unbiased): as in
    PyTorch, ddof >= n gives inf, or NaN for a constant slice.
    Gradient: gx = gy * 2 (x - mean) / max(0, n - ddof)."""

    def __init__(self, axes, keepdim, ddof):
        self.axes, self.keepdim, self.ddof = axes, keepdim, ddof

    def forward(self, x):
        centered = x - x.mean(axis=self.axes, keepdims=True)
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        denom = n - self.ddof
        self.scale = 1.0 / denom if denom > 0 else float("inf")
        self.save_for_backward(centered)
        self.in_shape = x.shape
        # half precision sums its squares in float32 (float16 overflows past 65504)
        acc = np.float32 if x.dtype == np.float16 else None
        total = (centered * centered).sum(axis=self.axes, keepdims=self.keepdim, dtype=acc)
        with np.errstate(invalid="ignore", over="ignore"):     # 0 * inf: NaN, as PyTorch
            return (total * self.scale).astype(x.dtype, copy=False)

    def backward(self, gy):
        (centered,) = self.saved
        with np.errstate(invalid="ignore", over="ignore"):
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


def _reduce_args(op, input, dim, keepdim=False):
    check_tensor(op, "input", input)
    check_bool(op, "keepdim", keepdim)
    axes = normalize_dims(op, dim, input.ndim)         # checked for a 0-d input too
    return axes if input.ndim else ()


def sum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum over ``dim`` (all axes when None); ``dtype``: cast the input to it first."""
    input = cast_to_dtype_arg("sum", input, dtype)
    return Sum(_reduce_args("sum", input, dim, keepdim), keepdim)(input)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Mean over ``dim`` (all axes when None); ``dtype``: cast the input to it first."""
    input = cast_to_dtype_arg("mean", input, dtype)
    check_float("mean", "input", input)
    return Mean(_reduce_args("mean", input, dim, keepdim), keepdim)(input)


def _check_nonempty(op, input, axes):
    for a in axes:
        if input.shape[a] == 0:
            raise ValueError(f"{op}: cannot reduce over an empty dimension {a} "
                             f"(input shape {input.shape})")


def _max_min(op, input, dim, keepdim):
    check_tensor(op, "input", input)
    keepdim = check_bool(op, "keepdim", keepdim)
    if isinstance(dim, Tensor):                     # max(input, other): elementwise
        if keepdim:
            raise TypeError(f"{op}: 'keepdim' cannot be used with a tensor 'other' "
                            f"({op}(input, other) is the elementwise {op}imum)")
        return (maximum if op == "max" else minimum)(input, dim)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}: 'dim' must be an int ({op} over one dim returns values and "
                        f"indices), got {dim!r}; use a{op}(input, dim={tuple(dim)}) to reduce "
                        "several dims")
    if dim is None:
        if keepdim:
            raise TypeError(f"{op}: keepdim=True needs an int 'dim' (as in PyTorch); use "
                            f"a{op}(input, keepdim=True) to keep every reduced dim")
        if input.data.size == 0:
            raise ValueError(f"{op}: the input (shape {input.shape}) is empty: it has no "
                             f"{op}imum")
        return (Amax if op == "max" else Amin)(tuple(range(input.ndim)), False,
                                               nan_wins=True)(input)
    d = normalize_dim(op, dim, input.ndim)
    if input.ndim:
        _check_nonempty(op, input, (d,))
    return max_along(op, input, d, bool(keepdim))


def max(input, dim=None, keepdim=False):
    """The maximum, as PyTorch's ``max``:

    - ``max(input)``: a 0-d tensor (the gradient is split among tied maxima);
    - ``max(input, dim, keepdim=False)``: a named tuple ``(values, indices)``, indices int64
      (the first maximum on ties), values differentiable (the gradient goes to the index),
      so ``_, predicted = outputs.max(1)`` works;
    - ``max(input, other)`` with a tensor ``other``: ``maximum(input, other)``.

    For several dims at once use ``amax``."""
    return _max_min("max", input, dim, keepdim)


def min(input, dim=None, keepdim=False):
    """The minimum, as PyTorch's ``min`` (see ``max``; ``amin`` for several dims)."""
    return _max_min("min", input, dim, keepdim)


def amax(input, dim=None, keepdim=False):
    """Maximum over ``dim`` (an int, a tuple of ints, or None/() for all dims); the gradient is
    split evenly among tied maxima, as PyTorch's ``amax``."""
    axes = _reduce_args("amax", input, dim, keepdim)
    _check_nonempty("amax", input, axes)
    return Amax(axes, keepdim)(input)


def amin(input, dim=None, keepdim=False):
    """Minimum over ``dim`` (int, tuple or all); ties split the gradient (PyTorch's ``amin``)."""
    axes = _reduce_args("amin", input, dim, keepdim)
    _check_nonempty("amin", input, axes)
    return Amin(axes, keepdim)(input)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product over ``dim`` (all axes when None); correct gradients with zeros in the input
    (see ``Prod``). Integer and bool inputs give int64, as in PyTorch; ``dtype``: cast the
    input to it first."""
    input = cast_to_dtype_arg("prod", input, dtype)
    return Prod(_reduce_args("prod", input, dim, keepdim), keepdim)(input)


def logsumexp(input, dim, keepdim=False):
    """log(sum(exp(input))) over ``dim`` (an int or a tuple), computed stably; an empty
    dim gives -inf and integer inputs give float32, as in PyTorch."""
    axes = _reduce_args("logsumexp", input, dim, keepdim)
    (input,) = _promoted([input], floating=True)
    return LogSumExp(axes, keepdim)(input)


def cumsum(input, dim, *, dtype=None):
    """Running sum along ``dim``: y_i = x_0 + ... + x_i. Integer and bool inputs give int64;
    ``dtype``: cast the input to it first."""
    check_tensor("cumsum", "input", input)
    input = cast_to_dtype_arg("cumsum", input, dtype)
    return Cumsum(normalize_dim("cumsum", dim, input.ndim))(input)


def norm(input, p="fro", dim=None, keepdim=False):
    """The vector p-norm over ``dim`` (all elements when None), as ``torch.norm``:
    ``p`` is ``'fro'`` (the 2-norm, over at most 2 dims), a number >= 0, ``inf`` or ``-inf``
    (see ``Norm``). Matrix norms ('nuc', matrix 2-norm) are not supported."""
    check_float("norm", "input", input)
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use 'fro', inf, -inf or a "
                             "number >= 0")
        if isinstance(dim, (tuple, list)) and len(dim) > 2:
            raise ValueError(f"norm: p='fro' takes at most 2 dims, got dim={dim!r}; use p=2 "
                             "for the 2-norm over more")
        p = 2
    if not is_real(p) or not p >= 0 and p != -math.inf:
        raise ValueError(f"norm: 'p' must be 'fro', inf, -inf or a number >= 0, got {p!r}")
    axes = _reduce_args("norm", input, dim, keepdim)
    if p in (math.inf, -math.inf):
        _check_nonempty("norm", input, axes)
    return Norm(axes, keepdim, float(p))(input)


def _logical(op, input, dim, keepdim):
    axes = _reduce_args(op, input, dim, keepdim)
    xp = backend.xp_of(input.data)
    fn = xp.all if op == "all" else xp.any
    return Tensor(xp.asarray(fn(input.data, axis=axes, keepdims=keepdim)))


def all(input, dim=None, keepdim=False):
    """Whether every element over ``dim`` is non-zero (a bool tensor; no gradient)."""
    return _logical("all", input, dim, keepdim)


def any(input, dim=None, keepdim=False):
    """Whether some element over ``dim`` is non-zero (a bool tensor; no gradient)."""
    return _logical("any", input, dim, keepdim)


def _ddof(op, unbiased, correction):
    """n - ddof is the divisor: ``correction`` (PyTorch 2's keyword) or 1/0 from the older
    ``unbiased`` bool; not both."""
    if correction is not None:
        if unbiased is not None:
            raise TypeError(f"{op}: give either 'unbiased' or 'correction', not both")
        check_number(op, "correction", correction, 0)
        return correction
    if unbiased is None:
        return 1
    if not isinstance(unbiased, (bool, np.bool_)):
        raise TypeError(f"{op}: 'unbiased' must be a bool, got {type(unbiased).__name__} "
                        f"{unbiased!r} (PyTorch's argument order: dim, unbiased, keepdim)")
    return 1 if unbiased else 0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim``: the sum of squared deviations divided by n - correction
    (``correction`` = 1, Bessel's, by default; ``unbiased=False`` is correction 0). The
    arguments come in PyTorch's order (dim, unbiased, keepdim; correction by keyword)."""
    check_float("var", "input", input)
    ddof = _ddof("var", unbiased, correction)
    return Var(_reduce_args("var", input, dim, keepdim), keepdim, ddof)(input)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation, sqrt(var), with var's arguments (see ``Std`` for the gradient)."""
    check_float("std", "input", input)
    ddof = _ddof("std", unbiased, correction)
    return Std(_reduce_args("std", input, dim, keepdim), keepdim, ddof)(input)


def _arg(op, input, dim, keepdim):
    check_tensor(op, "input", input)
    keepdim = check_bool(op, "keepdim", keepdim)
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
    if keepdim and input.ndim:                  # a 0-d input keeps its 0 dims
        out = xp.expand_dims(out, d)
    return Tensor(out.astype("int64"))


def argmax(input, dim=None, keepdim=False):
    """Index of the maximum (first one on ties), over the flattened tensor when dim is None."""
    return _arg("argmax", input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """Index of the minimum (first one on ties)."""
    return _arg("argmin", input, dim, keepdim)
