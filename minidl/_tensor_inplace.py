"""The in-place data ops of ``Tensor`` (``zero_``, ``fill_``, ``copy_``, ``add_``..., the
operators ``+= -= *= /=`` and item assignment ``x[index] = value``): they change a tensor's
memory outside the graph, for initialization, optimizers and bookkeeping, and refuse a tensor
that requires grad while grad mode is on (the operators then fall back to the out-of-place
op, which the graph records, and rebind the name).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _tensor_methods as _m  # its _F: minidl.functional, bound at import time
from . import backend
from .grad_mode import is_grad_enabled
from . import tensor as _t           # Tensor and its helpers, used at call time (circular)


def _broadcast_shape(a, b):
    """The shape shapes ``a`` and ``b`` broadcast to, or None when they do not."""
    try:
        return np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
        return None


class TensorInplace:
    """In-place data ops of ``minidl.Tensor`` (see the module docstring)."""

    __slots__ = ()

    def _check_inplace(self, name, other=None):
        """Refuse what an in-place data op cannot do: record a graph (this tensor, or the
        ``other`` it would take values from, requires grad while grad mode is on: the
        gradient would be lost) or write read-only or repeated memory."""
        if is_grad_enabled() and self.requires_grad:
            raise RuntimeError(
                f"{name}: in-place change of a tensor that requires grad; wrap it in "
                "minidl.no_grad() (as nn.init and the optimizers do)")
        if is_grad_enabled() and isinstance(other, _t.Tensor) and other.requires_grad:
            raise RuntimeError(
                f"{name}: the other tensor requires grad, and in-place ops are not recorded "
                "(its gradient would be lost); use the out-of-place op (e.g. y = x + other), "
                "or detach() it")
        a = self.data                # CuPy's flags have no writeable: look for repeats (stride 0)
        if not getattr(a.flags, "writeable", True) or any(
                st == 0 and n > 1 for st, n in zip(a.strides, a.shape)):
            raise RuntimeError(f"{name}: this tensor's memory is read-only (a broadcast view, "
                               "as expand makes, repeats elements); clone() it first")

    def zero_(self):
        self._check_inplace("zero_")
        self.data[...] = 0
        self._version += 1
        return self

    def fill_(self, value):
        self._check_inplace("fill_", value)
        if isinstance(value, _t.Tensor) and value.data.size == 1:
            value = value.item()
        if not isinstance(value, (numbers.Number, np.generic)):
            raise TypeError(f"fill_: value must be a number, got {type(value).__name__}")
        _t.check_fits("fill_", value, self.dtype)
        self.data[...] = _t.wrapped_scalar(value, self.dtype)
        self._version += 1
        return self

    def copy_(self, src):
        self._check_inplace("copy_", src)
        src = src.data if isinstance(src, _t.Tensor) else src
        if not hasattr(src, "shape"):
            src = _t._as_array(src, dtype=self.dtype)
        if _broadcast_shape(src.shape, self.data.shape) != self.data.shape:   # as PyTorch
            raise ValueError(f"copy_: source shape {tuple(src.shape)} does not broadcast to "
                             f"the destination shape {self.data.shape}")
        self.data[...] = backend.to_device(src, self.device)
        self._version += 1
        return self

    def _arith_(self, name, ufunc, other, alpha=1):
        """self = ufunc(self, alpha * other) in place: ``other`` broadcasts to self's shape and
        the result keeps self's dtype; a result of a higher kind (float into an integer
        tensor, an integer into a bool one) is refused, as PyTorch does."""
        self._check_inplace(name, other)
        other = _m._F._utils.as_operand(name, "other", other)
        if not _t.is_real(alpha):
            raise TypeError(f"{name}: 'alpha' must be a number, got {type(alpha).__name__}")
        if isinstance(other, _t.Tensor):
            if other.device != self.device:
                raise RuntimeError(f"{name}: 'other' is on {other.device}, this tensor on "
                                   f"{self.device}; move it with .to(device)")
            _m._F._utils.check_broadcast(name, self, other)
            if np.broadcast_shapes(self.shape, other.shape) != self.shape:
                raise ValueError(f"{name}: 'other' of shape {other.shape} does not broadcast "
                                 f"to this tensor's shape {self.shape} (in place, the result "
                                 "keeps the tensor's shape)")
        result = _m._F.elementwise.result_dtype(self, other, floating=name == "div_")
        rank = {"b": 0, "i": 1, "u": 1, "f": 2}
        if rank[result.kind] > rank[self.dtype.kind]:
            raise TypeError(f"{name}: the result type {result} cannot be stored in place in "
                            f"this {self.dtype} tensor (as in PyTorch); convert it first, "
                            "e.g. x = x.float()")
        if self.dtype.kind in "biu" and not isinstance(alpha, (numbers.Integral, np.integer)):
            raise TypeError(f"{name}: 'alpha' must be an int for an integer tensor, got "
                            f"{alpha!r}")
        if self.dtype.kind == "b" and name == "sub_":
            raise TypeError("sub_: subtraction of bool tensors is not supported (as in "
                            "PyTorch); use logical operations")
        b = other.data if isinstance(other, _t.Tensor) else other
        if alpha != 1:            # an integer ``other`` scaled in int64 (uint8 times -1)
            b = (b.astype(np.int64 if result.kind in "biu" else result, copy=False)
                 if hasattr(b, "astype") else b) * alpha
        b = _t.wrapped_scalar(b, self.dtype)      # an int wraps as in PyTorch: u8 - 1
        xp = backend.xp_of(self.data)
        getattr(xp, ufunc)(self.data, b, out=self.data, casting="unsafe")
        self._version += 1
        return self

    def add_(self, other, alpha=1):
        """self += alpha * other, in place (no graph; see ``_arith_``)."""
        return self._arith_("add_", "add", other, alpha)

    def sub_(self, other, alpha=1):
        """self -= alpha * other, in place."""
        return self._arith_("sub_", "subtract", other, alpha)

    def mul_(self, other):
        """self *= other, in place."""
        return self._arith_("mul_", "multiply", other)

    def div_(self, other):
        """self /= other (true division), in place; a floating-point tensor only."""
        return self._arith_("div_", "true_divide", other)

    def clamp_(self, min=None, max=None):
        """Clamp into [min, max] in place (either bound may be None)."""
        self._check_inplace("clamp_")
        if self.dtype.kind == "b":
            raise TypeError("clamp_: a bool tensor cannot be clamped (as in PyTorch)")
        if min is None and max is None:
            raise ValueError("clamp_: at least one of 'min' and 'max' must be given")
        bounds = []
        for name, v in (("min", min), ("max", max)):
            if v is not None and not _t.is_real(v):
                raise TypeError(f"clamp_: '{name}' must be a number or None, got "
                                f"{type(v).__name__}")
            bounds.append(v.item() if isinstance(v, np.generic) else v)
        min, max = bounds
        if min is not None and max is not None and min > max:
            raise ValueError(f"clamp_: 'min' ({min}) must not exceed 'max' ({max})")
        if self.dtype.kind != "f" and any(isinstance(v, float) for v in bounds):
            raise TypeError(f"clamp_: a float bound cannot clamp this {self.dtype} tensor in "
                            "place (as in PyTorch); convert it first, e.g. x = x.float()")
        if self.dtype.kind in "iu":        # bounds past the dtype's range bind nothing; CuPy 14
            info = np.iinfo(self.dtype)    # raises OverflowError for them (NEP 50)
            min = None if min is None or min <= info.min else min
            max = None if max is None or max >= info.max else max
            if min is None and max is None:
                self._version += 1
                return self
        backend.xp_of(self.data).clip(self.data, min, max, out=self.data)
        self._version += 1
        return self

    clip_ = clamp_

    def _graph_involved(self, other=None):
        """Whether an in-place change here would have to be recorded: grad mode is on and
        this tensor (or ``other``) requires grad."""
        return is_grad_enabled() and (self.requires_grad or (
            isinstance(other, _t.Tensor) and other.requires_grad))

    # x += y and friends: in place (views and other names see the change, as in PyTorch);
    # when the graph is involved, the out-of-place op (recorded) and the name is rebound
    def __iadd__(self, other):
        return self + other if self._graph_involved(other) else self.add_(other)

    def __isub__(self, other):
        return self - other if self._graph_involved(other) else self.sub_(other)

    def __imul__(self, other):
        return self * other if self._graph_involved(other) else self.mul_(other)

    def __itruediv__(self, other):
        return self / other if self._graph_involved(other) else self.div_(other)

    def __setitem__(self, index, value):
        """x[index] = value, in place (``value``: a number, a Tensor or an array that
        broadcasts to x[index]'s shape; the index is read as ``x[index]`` reads it)."""
        if self._graph_involved(value):
            raise RuntimeError(
                "__setitem__: assigning into a tensor while the graph records it (it or the "
                "value requires grad) is not supported; build the result with where, "
                "masked_fill or cat, or assign under minidl.no_grad()")
        self._check_inplace("__setitem__")
        target, index = _m._F.indexing.assignment_target(self, index)
        v = value.data if isinstance(value, _t.Tensor) else value
        array = hasattr(v, "shape") and not isinstance(v, np.generic)
        if array:
            v = backend.to_device(v, self.device)
        elif not isinstance(v, (numbers.Number, np.generic)):
            raise TypeError(f"__setitem__: value must be a number, a Tensor or an array, got "
                            f"{type(value).__name__}")
        try:
            target[index] = v              # cast to the tensor's dtype, as PyTorch does
        except ValueError:                 # the shape check only on failure: an advanced
            shape = target[index].shape if array else None   # index's read copies
            if shape is None or _broadcast_shape(v.shape, shape) is not None:
                raise
            raise ValueError(f"__setitem__: a value of shape {tuple(v.shape)} does not "
                             f"broadcast to the indexed shape {shape}") from None
        self._version += 1
