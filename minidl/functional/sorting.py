"""Ops that return values and their positions: max/min along one dim, sort, argsort, topk.

Each returns a named tuple ``(values, indices)`` as PyTorch does (``return_types``); the
indices are int64 and carry no gradient, the values are differentiable: every value's gradient
goes back to the one position it was taken from. Ties keep their original order (the first
occurrence wins, as NumPy's argmax and a stable sort pick), and NaN counts as the largest
value, as in PyTorch.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import backend
from .._checks import check_bool, check_int
from ..autograd import Function
from ..tensor import Tensor
from ._utils import check_tensor, normalize_dim


def _values_indices(name):
    t = namedtuple(name, ("values", "indices"))
    t.__qualname__ = f"return_types.{name}"
    t.__doc__ = f"What ``{name}`` returns: ``values`` and their int64 ``indices``."
    return t


class return_types:
    """The named tuples of max/min(dim), sort and topk (PyTorch's ``torch.return_types``)."""

    max = _values_indices("max")
    min = _values_indices("min")
    sort = _values_indices("sort")
    topk = _values_indices("topk")


def _scatter_along(gy, idx, dim, shape):
    """gx of ``shape``, zero except gx[..., idx[..., j, ...], ...] = gy[..., j, ...] along
    ``dim`` (``idx`` holds distinct positions within each slice, so plain assignment)."""
    xp = backend.xp_of(gy)
    gx = xp.zeros(shape, gy.dtype)
    nd = len(shape)
    where = [xp.arange(n).reshape([-1 if j == i else 1 for j in range(nd)])
             for i, n in enumerate(idx.shape)]
    where[dim] = idx
    gx[tuple(where)] = gy.reshape(idx.shape)
    return gx


class MaxDim(Function):
    """values, indices = the max (or min) of x along ``dim`` and its first position (NumPy's
    argmax/argmin).  Gradient: gx = gy at that position, 0 elsewhere (the whole gradient to
    the picked element; ``amax`` splits it among ties instead)."""

    def __init__(self, dim, keepdim, mode):
        self.dim, self.keepdim, self.mode = dim, keepdim, mode

    def forward(self, x):
        xp = backend.xp_of(x)
        self.in_shape = x.shape
        xr = x.reshape(1) if x.ndim == 0 else x
        arg = xp.argmax if self.mode == "max" else xp.argmin
        idx = xp.expand_dims(arg(xr, axis=self.dim), self.dim)    # keepdim shape
        values = xp.take_along_axis(xr, idx, axis=self.dim)
        self.save_for_backward(idx)
        self.r_shape = xr.shape
        shape = idx.shape if self.keepdim and x.ndim else tuple(
            n for i, n in enumerate(x.shape) if i != self.dim)
        return values.reshape(shape), idx.astype(np.int64).reshape(shape)

    def backward(self, gy, gidx):
        (idx,) = self.saved
        return _scatter_along(gy, idx, self.dim, self.r_shape).reshape(self.in_shape)


def _sort_indices(x, dim, descending):
    """Positions that sort ``x`` along ``dim`` stably (ties keep their order) and NaN last
    (first when descending)."""
    xp = backend.xp_of(x)
    if xp is not np:                # CuPy sorts with thrust, which waits for the device
        backend.refuse_in_capture("sorting on the GPU (sort, argsort, topk)")
    stable = {"kind": "stable"} if xp is np else {}     # CuPy's sorts are stable, and older
    if not descending:                                   # CuPy takes no 'kind'
        return xp.argsort(x, axis=dim, **stable)
    # a stable ascending sort of the reversed slice, read backwards, keeps ties in order
    rev = xp.argsort(xp.flip(x, dim), axis=dim, **stable)
    return (x.shape[dim] - 1) - xp.flip(rev, dim)


class Sort(Function):
    """values, indices = x sorted along ``dim`` (the first ``k`` only, for topk).
    Gradient: gx[..., indices[j], ...] = gy[..., j, ...] along dim; positions topk did not
    pick get 0."""

    def __init__(self, dim, descending, k=None):
        self.dim, self.descending, self.k = dim, descending, k

    def forward(self, x):
        xp = backend.xp_of(x)
        self.in_shape = x.shape
        xr = x.reshape(1) if x.ndim == 0 else x
        idx = _sort_indices(xr, self.dim, self.descending)
        if self.k is not None:
            idx = idx[(slice(None),) * self.dim + (slice(0, self.k),)]
        values = xp.take_along_axis(xr, idx, axis=self.dim)
        self.save_for_backward(idx)
        self.r_shape = xr.shape
        shape = idx.shape if x.ndim else ()
        return values.reshape(shape), idx.astype(np.int64).reshape(shape)

    def backward(self, gy, gidx):
        (idx,) = self.saved
        return _scatter_along(gy, idx, self.dim, self.r_shape).reshape(self.in_shape)


def sort(input, dim=-1, descending=False, stable=False):
    """Sort along ``dim``: a named tuple ``(values, indices)`` with
    ``values = input.gather(dim, indices)``. Always stable (``stable`` is accepted for
    PyTorch's signature): equal values keep their order; NaN sorts as the largest."""
    check_tensor("sort", "input", input)
    d = normalize_dim("sort", dim, input.ndim)
    check_bool("sort", "stable", stable)
    values, indices = Sort(d, check_bool("sort", "descending", descending))(input)
    return return_types.sort(values, indices)


def argsort(input, dim=-1, descending=False, stable=False):
    """The int64 positions that sort ``input`` along ``dim`` (``sort(...).indices``)."""
    check_tensor("argsort", "input", input)
    d = normalize_dim("argsort", dim, input.ndim)
    check_bool("argsort", "stable", stable)
    desc = check_bool("argsort", "descending", descending)
    x = input.data.reshape(1) if input.ndim == 0 else input.data
    return Tensor(_sort_indices(x, d, desc).astype(np.int64).reshape(input.shape))


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (``largest=False``: smallest) elements along ``dim`` as a named tuple
    ``(values, indices)``, in sorted order (also when ``sorted=False``, which PyTorch allows
    to be in any order). Among equal values the earlier position comes first."""
    check_tensor("topk", "input", input)
    d = normalize_dim("topk", dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    k = check_int("topk", "k", k)
    if not 0 <= k <= n:
        raise ValueError(f"topk: 'k' must be in 0..{n} (the size of dim {dim} of the input "
                         f"of shape {input.shape}), got {k}")
    check_bool("topk", "sorted", sorted)
    values, indices = Sort(d, check_bool("topk", "largest", largest), k)(input)
    return return_types.topk(values, indices)


def max_along(op, input, dim, keepdim):
    """``(values, indices)`` of max (op "max") or min along the int ``dim`` (see ``MaxDim``);
    ``reduction.max/min`` check their arguments and call this."""
    values, indices = MaxDim(dim, keepdim, op)(input)
    return getattr(return_types, op)(values, indices)
