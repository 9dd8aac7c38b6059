"""Gradient clipping and flat parameter vectors (``torch.nn.utils``'s names and semantics).

The clipping functions change the ``.grad`` arrays of the parameters in place, with array
operations on their device: ``clip_grad_norm_`` returns the total norm as a 0-d Tensor and
never reads it back to the host (unless ``error_if_nonfinite`` asks it to check the norm), so
on a GPU it queues its work without waiting for it.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .. import functional as F
from .._checks import check_number
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def _params(op, parameters, unique=True):
    """A Tensor or an iterable of Tensors as a list, in order; with ``unique`` each tensor once
    (clipping a parameter listed twice must scale its gradient once)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        items = list(parameters)
    except TypeError:
        raise TypeError(f"{op}: 'parameters' must be a Tensor or an iterable of Tensors, got "
                        f"{type(parameters).__name__}") from None
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: 'parameters' must hold Tensors, item {i} is "
                            f"{type(t).__name__}")
    if unique:
        items = list({id(t): t for t in items}.values())
    return items


def _scalar(v):
    """A one-element Tensor's value (PyTorch takes these for the bounds below), else ``v``."""
    return v.item() if isinstance(v, Tensor) and v.data.size == 1 else v


def _array_norm(g, p):
    """The p-norm of array g's values as a 0-d array on g's device, in g's dtype."""
    xp = backend.xp_of(g)
    if p == math.inf:
        return xp.abs(g).max()
    if p == 2.0:                  # not dot(g, g): cuBLAS calls cannot be graph-captured
        return xp.sqrt(xp.square(g).sum())
    if p == 1.0:
        return xp.abs(g).sum()
    return (xp.abs(g) ** p).sum() ** (1.0 / p)


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scale the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``; return the total norm (before clipping).

    total = || (||g_1||_p, ..., ||g_k||_p) ||_p, the p-norm of all gradients' values taken
    together (the largest |value| for p = inf); every g_i <- g_i * min(1, max_norm /
    (total + 1e-6)). Parameters without a gradient are skipped.

    Args:
        parameters: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``).
        max_norm: the largest allowed total norm (a non-negative number).
        norm_type: p, a positive number or ``math.inf`` (or 'inf').
        error_if_nonfinite: raise RuntimeError when the total norm is nan or inf (this reads
            the norm back to the host); otherwise the gradients are scaled by it anyway.
        foreach: accepted for PyTorch compatibility and ignored.

    Returns:
        0-d Tensor on the gradients' device (of the first gradient's device and dtype when
        they differ); 0.0 (float32, cpu) when no parameter has a gradient.
    """
    op = "clip_grad_norm_"
    params = _params(op, parameters)
    max_norm = check_number(op, "max_norm", _scalar(max_norm), 0)
    if isinstance(norm_type, str) and norm_type.strip().lower() in ("inf", "+inf"):
        norm_type = math.inf
    p = check_number(op, "norm_type", _scalar(norm_type), 0, open_min=True)
    grads = [t.grad for t in params if t.grad is not None]
    if not grads:
        return Tensor(np.zeros((), np.float32))
    first = grads[0].data
    xp = backend.xp_of(first)
    # float16 is summed in float32 (as PyTorch does): squares of values above 256 overflow it
    acc = np.dtype(np.float32) if first.dtype == np.float16 else first.dtype
    norms = [backend.to_device(xp.asarray(_array_norm(g.data.astype(acc, copy=False), p)),
                               backend.device_of(first)) for g in grads if g.data.size]
    if not norms:
        total = xp.zeros((), acc)
    elif p == math.inf:
        total = xp.stack(norms).max()
    elif p == 2.0:
        total = xp.sqrt(xp.square(xp.stack(norms)).sum())
    else:
        total = (xp.stack(norms) ** p).sum() ** (1.0 / p)
    total = xp.asarray(total)
    if error_if_nonfinite:
        backend.refuse_in_capture(f"{op}(error_if_nonfinite=True), which reads the norm,")
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"{op}: the total norm of order {p} of the gradients is non-finite ({total}), so "
            "they cannot be clipped; fix the nan/inf gradients, or pass "
            "error_if_nonfinite=False to scale them by it anyway")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)          # 0-d, on the device
    for g in grads:
        c = backend.to_device(coef, backend.device_of(g.data)).astype(g.dtype)
        xp_g = backend.xp_of(g.data)
        xp_g.multiply(g.data, c, out=g.data)
        g._version += 1
    return Tensor(total.astype(first.dtype))


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient value of ``parameters`` to [-clip_value, clip_value], in place.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        clip_value: a non-negative number.
        foreach: accepted for PyTorch compatibility and ignored.
    """
    op = "clip_grad_value_"
    params = _params(op, parameters)
    c = check_number(op, "clip_value", _scalar(clip_value), 0)
    for t in params:
        if t.grad is not None:
            g = t.grad.data
            backend.xp_of(g).clip(g, -c, c, out=g)
            t.grad._version += 1


def parameters_to_vector(parameters):
    """All values of ``parameters`` in one 1-D Tensor, in order (each flattened in C order).
    Differentiable: gradients flow back to the parameters."""
    op = "parameters_to_vector"
    params = _params(op, parameters, unique=False)
    if not params:
        raise ValueError(f"{op}: 'parameters' is empty")
    return F.cat([F.reshape(t, (-1,)) for t in params])


@no_grad()
def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D Tensor ``vec`` into ``parameters``, in place (the
    inverse of ``parameters_to_vector``); each slice is cast to its parameter's dtype.
    A graph that saved an old value of a parameter refuses to run backward afterwards."""
    op = "vector_to_parameters"
    if not isinstance(vec, Tensor):
        raise TypeError(f"{op}: 'vec' must be a Tensor, got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"{op}: 'vec' must be 1-D, got shape {vec.shape}")
    params = _params(op, parameters, unique=False)
    total = sum(t.numel() for t in params)
    if vec.shape[0] != total:
        raise ValueError(f"{op}: 'vec' has {vec.shape[0]} values, the parameters {total}")
    for t in params:                     # all checked before any parameter is written
        if t.device != vec.device:
            raise ValueError(f"{op}: a parameter is on {t.device}, 'vec' on {vec.device}")
    lo = 0
    for t in params:
        n = t.numel()
        t.data[...] = vec.data[lo:lo + n].reshape(t.shape).astype(t.dtype, copy=False)
        t._version += 1
        lo += n
