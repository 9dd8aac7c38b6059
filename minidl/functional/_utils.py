"""Helpers shared by the functional ops: argument checks and gradient reduction."""
from __future__ import annotations

import functools
import numbers

import numpy as np

from .. import backend
from .._checks import check_int
from ..grad_mode import is_grad_enabled
from ..kernels import threads
from ..tensor import Tensor


def sum_to(g, shape):
    """Sum the broadcast gradient ``g`` back down to ``shape`` (the inverse of broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def type_name(x):
    if isinstance(x, Tensor):
        return f"Tensor(shape={x.shape}, dtype={x.dtype})"
    return type(x).__name__


def check_tensor(op, arg, x):
    """Raise TypeError unless ``x`` is a Tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: argument '{arg}' must be a Tensor, got {type_name(x)}")
    return x


def check_float(op, arg, x):
    """Raise TypeError unless ``x`` is a floating-point Tensor."""
    check_tensor(op, arg, x)
    if x.dtype.kind != "f":
        raise TypeError(
            f"{op}: argument '{arg}' must be a floating-point tensor, got dtype {x.dtype} "
            f"(convert with .float())")
    return x


def as_operand(op, arg, x):
    """A Tensor or a Python number for a binary op; arrays become constant tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, bool) or not isinstance(x, (numbers.Number, np.ndarray, np.generic)):
        if type(x).__module__.startswith("cupy"):
            return Tensor(x)
        raise TypeError(f"{op}: argument '{arg}' must be a Tensor or a number, "
                        f"got {type(x).__name__}")
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return Tensor(x)
    return x


def check_broadcast(op, a, b):
    """Raise ValueError when two operand shapes do not broadcast; returns nothing."""
    sa = a.shape if isinstance(a, Tensor) else np.shape(a)
    sb = b.shape if isinstance(b, Tensor) else np.shape(b)
    if sa == sb or not sa or not sb:
        return
    try:
        np.broadcast_shapes(sa, sb)
    except ValueError:
        raise ValueError(f"{op}: shapes {sa} and {sb} cannot be broadcast together "
                         "(trailing dimensions must be equal or 1)") from None


def normalize_dim(op, dim, ndim, arg="dim"):
    """Turn a possibly negative dim into 0..ndim-1, or raise IndexError naming the op. A 0-d
    tensor takes 0 and -1, as in PyTorch."""
    dim = check_int(op, arg, dim)
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: '{arg}'={dim} is out of range for a tensor with {ndim} "
                         f"dimension(s) (expected {-n}..{n - 1})")
    return dim % n


def normalize_dims(op, dim, ndim):
    """None or an empty sequence -> all axes (PyTorch reads ``dim=()`` as "all" too); int or
    sequence -> sorted tuple of non-negative axes."""
    if dim is None or (isinstance(dim, (list, tuple)) and not dim):
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        dims = tuple(normalize_dim(op, d, ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise ValueError(f"{op}: 'dim' has repeated dimensions: {dim}")
        return tuple(sorted(dims))
    return (normalize_dim(op, dim, ndim),)


def check_shape_arg(op, shape, arg="shape"):
    """A shape given as a tuple/list of ints (a single int is allowed)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"{op}: '{arg}' must be a tuple of ints, got {shape!r}")
    return tuple(int(s) for s in shape)


def check_pair(op, name, value, minimum):
    """An int or a pair of ints (kernel sizes, strides, paddings), each >= ``minimum``, as a
    tuple of two Python ints; TypeError/ValueError naming ``op`` and ``name`` otherwise."""
    vals = value if isinstance(value, (tuple, list)) else (value, value)
    if len(vals) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                 for v in vals):
        raise TypeError(f"{op}: '{name}' must be an int or a pair of ints, got {value!r}")
    vals = tuple(int(v) for v in vals)
    if min(vals) < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: '{name}' must be {kind}, got {value!r}")
    return vals


def relu_mask(g, y):
    """A new array: ``g`` where ``y > 0``, else 0 (the gradient through y = max(x, 0)).

    On the host as a float mask multiplied in place: ``g * (y > 0)`` multiplies float by bool
    through NumPy's casting loop, 1.2-1.4x slower for the arrays of a CIFAR batch."""
    xp = backend.xp_of(g)
    if xp is not np:
        return g * (y > 0)
    out = np.empty_like(y, dtype=g.dtype)
    y1, g1, o1 = (a.reshape(1) if a.ndim == 0 else a for a in (y, g, out))

    def part(lo, hi):                      # on the host threads (kernels.threads)
        mask = np.greater(y1[lo:hi], 0, out=o1[lo:hi])
        np.multiply(mask, g1[lo:hi], out=mask)

    threads.parallel(part, y1.shape[0], items=y1.size)
    return out


def blockwise(xp, fn, n, block, items=None):
    """``fn(lo, hi)`` over blocks [lo, hi) of at most ``block`` covering range(n): on the host
    the blocks are shared out among the host threads (``threads.parallel``; ``items`` as
    there), so that a chain of passes over a block keeps its temporaries in the core's cache
    instead of sending each pass through memory; on a GPU one call ``fn(0, n)``."""
    if xp is not np:
        fn(0, n)
        return

    def part(lo, hi):
        for b in range(lo, hi, block):
            fn(b, min(b + block, hi))
    threads.parallel(part, n, items)


def int64_indices(a):
    """Integer labels or indices as int64 (a no-op for int64). Comparing a uint8 or int8 array
    with a Python int outside its range (labels against ignore_index=-100 or C=300) raises
    OverflowError in CuPy 14 (NEP 50), and np.where wraps such a value silently."""
    return a if a.dtype == np.int64 else a.astype(np.int64)


def accepts_unbatched(fn):
    """Let ``fn``, a spatial op of an (N, C, H, W) input, take one unbatched (C, H, W) image
    too, as PyTorch's do: it runs as a batch of one, and the batch axis is removed from the
    result (from each, for a pair such as max pooling's values and indices)."""
    @functools.wraps(fn)
    def op(input, *args, **kwargs):
        if not (isinstance(input, Tensor) and input.ndim == 3):
            return fn(input, *args, **kwargs)
        out = fn(input.unsqueeze(0), *args, **kwargs)
        if isinstance(out, tuple):
            parts = [o.squeeze(0) for o in out]
            return type(out)(*parts) if hasattr(out, "_fields") else tuple(parts)
        return out.squeeze(0)
    return op


def kept_for_backward(a, source, *inputs):
    """``a``, an index or mask array read from the Tensor ``source`` that a backward will use,
    as a copy when the graph records the op (grad mode on, an input requiring grad): the
    caller may change ``source`` in place before backward, which PyTorch refuses and which
    would otherwise silently move the gradient. A copy keeps it right."""
    if isinstance(source, Tensor) and is_grad_enabled() and any(
            isinstance(x, Tensor) and x.requires_grad for x in inputs):
        return a.copy()
    return a


def cast_to_dtype_arg(op, input, dtype, kinds="biuf"):
    """PyTorch's ``dtype`` argument (of softmax, sum, mean...): the input cast (differentiably)
    to it before the op, so the op runs and returns in it; None leaves it as it is."""
    if dtype is None:
        return input
    from ..factories import _dtype  # noqa: PLC0415 (factories imports the Tensor)
    check_tensor(op, "input", input)
    return input.to(_dtype(op, dtype, kinds=kinds))
