"""Indexing ops: ``getitem`` (``x[index]``: slices, ints, None, ..., integer and boolean
index arrays), ``narrow``, ``gather``, ``masked_fill``, ``tril``/``triu`` and ``one_hot``.
Like the shape ops, none of them computes new values: each backward puts gradient entries back
where they were read from (summed where one entry was read several times, zero where an entry
was overwritten or masked out)."""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_int
from ..autograd import Function
from ..tensor import Tensor, is_real
from ._utils import (check_tensor, int64_indices, kept_for_backward, normalize_dim, sum_to,
                     type_name)
from .elementwise import cast, to_device
from .shape import reshape


def _is_basic_index(index):
    """True when indexing cannot hit one element twice (ints, slices, None, ..., bool masks)."""
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if it is None or it is Ellipsis or isinstance(it, (int, slice, np.integer)):
            continue
        if hasattr(it, "dtype") and it.dtype.kind == "b":
            continue
        return False
    return True


def _is_mask(it):
    return hasattr(it, "dtype") and it.dtype.kind == "b" and it.ndim > 0


def _width(it):
    """How many axes of the indexed array one index item consumes."""
    if it is None or it is Ellipsis or isinstance(it, (bool, np.bool_)) or (
            hasattr(it, "dtype") and it.dtype.kind == "b" and it.ndim == 0):
        return 0
    return it.ndim if _is_mask(it) else 1


def _check_mask_shapes(items, shape):
    """Raise NumPy's IndexError when a boolean mask does not match the axes it covers (its
    integer positions would index them without complaint)."""
    width = _width
    pos, used = 0, sum(width(it) for it in items)
    for it in items:
        if it is Ellipsis:
            pos += max(len(shape) - used, 0)
        elif _is_mask(it):
            axes = tuple(shape[pos:pos + it.ndim])
            if axes != tuple(it.shape):
                raise IndexError(f"boolean index of shape {tuple(it.shape)} does not match the "
                                 f"indexed axes {pos}..{pos + it.ndim - 1} of sizes {axes}")
            pos += it.ndim
        else:
            pos += width(it)


def _masks_as_indices(index, shape):
    """``index`` with its boolean arrays (of >= 1 dimension) replaced by the integer arrays of
    their True positions (``mask.nonzero()``, which NumPy defines ``x[mask]`` by), and whether
    there were any. Done once on a GPU, where each boolean-mask indexing reads the number of
    True entries back to the host: forward pays that read, backward reuses the indices."""
    items = index if isinstance(index, tuple) else (index,)
    if not any(_is_mask(it) for it in items):
        return index, False
    backend.refuse_in_capture("boolean-mask indexing on the GPU (the number of selected "
                              "entries is read back to the host)")
    _check_mask_shapes(items, shape)
    out = []
    for it in items:
        if _is_mask(it):
            out.extend(backend.xp_of(it).nonzero(it))
        else:
            out.append(it)
    return tuple(out), True


class GetItem(Function):
    """y = x[index].  Gradient: gx = zeros like x, then gx[index] += gy, adding repeatedly
    where an integer-array index selects the same element several times (scatter-add).

    On a GPU, boolean masks become integer indices in forward (one read of the number of
    True entries; refused while a CUDA graph is captured) that backward reuses; positions
    from masks alone are distinct, so backward assigns instead of scatter-adding."""

    def __init__(self, index):
        self.index = index
        self.distinct = False

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        if backend._is_cupy_array(x):
            index, masked = _masks_as_indices(self.index, x.shape)
            if masked:
                self.distinct = _is_basic_index(self.index)   # no integer arrays besides
                self.index = index
        return x[self.index]

    def backward(self, gy):
        xp = backend.xp_of(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if self.distinct or _is_basic_index(self.index):
            gx[self.index] = gy
        else:
            backend.scatter_add(gx, self.index, gy)
        return gx


class MaskedFill(Function):
    """y = value where mask, else x (x, mask broadcast together; value a number or a 0-d
    array of x's dtype).  Gradient: gx = sum_to(gy where not mask, else 0, x.shape),
    gvalue = sum of gy where mask."""

    def __init__(self, mask):
        self.mask = mask

    def forward(self, x, value):
        self.in_shape = x.shape
        if not hasattr(value, "dtype"):
            value = x.dtype.type(value)
        return backend.xp_of(x).where(self.mask, value, x)

    def backward(self, gy):
        xp, zero = backend.xp_of(gy), gy.dtype.type(0)
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = sum_to(xp.where(self.mask, zero, gy), self.in_shape)
        if self.needs_input_grad[1]:
            gv = xp.where(self.mask, gy, zero).sum(keepdims=True).reshape(())
        return gx, gv


class Gather(Function):
    """y[i, j, k] = x[index[i, j, k], j, k] for axis 0 (likewise for the others); y has
    index's shape, which may be smaller than x's off ``axis``.
    Gradient: gx = zeros like x, then gx[index[i, j, k], j, k] += gy[i, j, k].

    The adds run as one pass per position k along ``axis``: within a pass every fiber (the
    other coordinates) gets one entry, so no two writes hit one element and the gradient is
    the same on every run and device (a GPU scatter-add with atomics sums in a varying
    order). That is index.shape[axis] passes of one element per fiber each."""

    def __init__(self, axis, index):
        self.axis, self.index = axis, index

    def forward(self, x):
        self.in_shape = x.shape
        part = x[tuple(slice(None) if d == self.axis else slice(0, n)
                       for d, n in enumerate(self.index.shape))]
        return backend.xp_of(x).take_along_axis(part, self.index, axis=self.axis)

    def backward(self, gy):
        xp, index, axis = backend.xp_of(gy), self.index, self.axis
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        rest = [d for d in range(index.ndim) if d != axis]
        grids = {d: xp.arange(index.shape[d]).reshape(
            [-1 if e == d else 1 for e in rest]) for d in rest}   # broadcast over the fibers
        head = (slice(None),) * axis
        for k in range(index.shape[axis]):
            at = tuple(index[head + (k,)] if d == axis else grids[d] for d in range(index.ndim))
            gx[at] += gy[head + (k,)]
        return gx


class Triangle(Function):
    """y = x where the (row, col) of the last two axes satisfies col - row <= diagonal
    (``lower``, tril) or col - row >= diagonal (triu), else 0.
    Gradient: gx = gy on the kept entries, 0 elsewhere."""

    def __init__(self, diagonal, lower):
        self.diagonal, self.lower = diagonal, lower

    def _keep(self, a):
        xp, (R, C) = backend.xp_of(a), a.shape[-2:]
        if self.lower:
            return xp.tri(R, C, self.diagonal, dtype=bool)
        return ~xp.tri(R, C, self.diagonal - 1, dtype=bool)

    def forward(self, x):
        return backend.xp_of(x).where(self._keep(x), x, x.dtype.type(0))

    def backward(self, gy):
        return backend.xp_of(gy).where(self._keep(gy), gy, gy.dtype.type(0))


# ---------------------------------------------------------------------------------------------

def _index_component(it):
    if isinstance(it, Tensor):
        return it.data
    if isinstance(it, list):
        a = np.asarray(it)
        return a.astype(np.int64) if a.size == 0 else a      # x[[]]: no rows (PyTorch)
    return it


def _check_range_later(index, shape):
    """CuPy takes out-of-range integer-array indices modulo the axis size (NumPy raises):
    each integer array is checked on the device and the error raised at the next
    synchronization (``backend.check_later``), as the losses do for labels."""
    items = index if isinstance(index, tuple) else (index,)
    pos, used, found = 0, sum(_width(it) for it in items), []
    for it in items:
        if it is Ellipsis:
            pos += max(len(shape) - used, 0)
            continue
        if hasattr(it, "dtype") and it.dtype.kind in "iu" and it.ndim > 0 and pos < len(shape):
            found.append((it, pos, shape[pos]))
        pos += _width(it)
    if not found:
        return
    flag = None
    for it, _, n in found:
        a = int64_indices(it)
        bad = ((a < -n) | (a >= n)).any()
        flag = bad if flag is None else flag | bad

    def error():
        for it, axis, n in found:
            lo, hi = int(it.min()), int(it.max())
            if lo < -n or hi >= n:
                bad = lo if lo < -n else hi
                return IndexError(f"getitem: index {bad} is out of range for axis {axis} of "
                                  f"size {n} (tensor shape {tuple(shape)})")
        return IndexError("getitem: an index was out of range in a step since the last "
                          "synchronization")
    backend.check_later(flag, error)


def _is_int_item(it):
    return isinstance(it, (int, np.integer)) and not isinstance(it, (bool, np.bool_)) or (
        hasattr(it, "dtype") and it.dtype.kind in "iu" and it.ndim == 0)


def _ints_first(items):
    """PyTorch applies an index's ints before its arrays (each int selects, removing its
    axis); NumPy counts them with the arrays, which moves the arrays' axes to the front when a
    slice separates them (``x[0, :, [0, 1, 2]]``: (N, 3) in PyTorch, (3, N) in NumPy). So for
    an index with both: (the ints, with slices for the other axes), then (the rest)."""
    arrays = any(hasattr(it, "dtype") and it.ndim > 0 for it in items)
    if not arrays or not any(_is_int_item(it) for it in items):
        return None
    first, rest = [], []
    for it in items:
        if _is_int_item(it):
            first.append(it)
        elif it is Ellipsis:
            first.append(it)
            rest.append(it)
        else:
            first.extend([slice(None)] * _width(it))
            rest.append(it)
    return tuple(first), tuple(rest)


def getitem(input, index):
    """input[index] with slices, ints, None, ..., integer arrays/tensors and boolean masks,
    as PyTorch reads them (ints select before the arrays index: see ``_ints_first``)."""
    check_tensor("getitem", "input", input)
    index, split = _read_index("getitem", input, index)
    if split is not None:
        return _getitem(_getitem(input, split[0], input.shape), split[1], input.shape)
    return _getitem(input, index, input.shape)


def _read_index(op, input, index):
    """(the raw index, ``_ints_first``'s two steps of it or None when one step does)."""
    index = _raw_index(op, input, index)
    return index, _ints_first(index if isinstance(index, tuple) else (index,))


def _raw_index(op, input, index):
    """The index with Tensors as their arrays (copies when the graph records the op: see
    ``kept_for_backward``), lists as arrays, on input's device."""
    def raw(it):
        return kept_for_backward(_index_component(it), it, input)
    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if hasattr(it, "dtype") and it.dtype.kind not in "biu":
            raise IndexError(f"{op}: index arrays must be integer or boolean, got dtype "
                             f"{it.dtype}")
        if hasattr(it, "dtype") and type(it) is not type(input.data) and it.ndim > 0:
            return tuple(backend.to_device(i, input.device) if hasattr(i, "dtype") else i
                         for i in items)
    return index


def assignment_target(input, index):
    """For ``input[index] = value``: (an array, an index into it) that select what
    ``input[index]`` reads, in PyTorch's reading of the index (ints first: a view of
    input's memory, then the rest)."""
    index, split = _read_index("__setitem__", input, index)
    if split is None:
        return input.data, index
    return input.data[split[0]], split[1]


def _getitem(input, index, shape):
    if backend._is_cupy_array(input.data):
        _check_range_later(index, input.shape)
    try:
        return GetItem(index)(input)
    except IndexError as exc:
        raise IndexError(f"getitem: {exc} (tensor shape {shape})") from None


def nonzero(input, *, as_tuple=False):
    """Positions of the nonzero (True) entries, in C order: an int64 (count, ndim) tensor, or
    with ``as_tuple`` one int64 tensor of coordinates per axis (what ``x[...]`` takes). Outside
    the graph. On a GPU the count is read back to the host (refused in a CUDA graph)."""
    check_tensor("nonzero", "input", input)
    a = input.data
    xp = backend.xp_of(a)
    if backend._is_cupy_array(a):
        backend.refuse_in_capture("nonzero on the GPU (the number of entries is read back to "
                                  "the host)")
    if a.ndim == 0:                              # a 0-d tensor has no axes to give positions
        count = int((a != 0).item())
        if as_tuple:
            return (Tensor(xp.zeros(count, np.int64)),)
        return Tensor(xp.zeros((count, 0), np.int64))
    coords = tuple(c.astype(np.int64, copy=False) for c in xp.nonzero(a))
    if as_tuple:
        return tuple(Tensor(c) for c in coords)
    return Tensor(xp.stack(coords, axis=1))


def argwhere(input):
    """``nonzero(input)``: the (count, ndim) positions of the nonzero entries."""
    return nonzero(input)


def narrow(input, dim, start, length):
    """Entries start .. start + length - 1 along ``dim`` (a view); ``start`` may be negative
    (counted from the end)."""
    check_tensor("narrow", "input", input)
    if input.ndim == 0:
        raise ValueError("narrow: cannot be applied to a 0-d tensor")
    d = normalize_dim("narrow", dim, input.ndim)
    start, length = check_int("narrow", "start", start), check_int("narrow", "length", length)
    n = input.shape[d]
    if not -n <= start <= n:
        raise IndexError(f"narrow: 'start'={start} is out of range for dim {d} of size {n} "
                         f"(expected {-n}..{n})")
    start = start + n if start < 0 else start
    if length < 0 or start + length > n:
        raise ValueError(f"narrow: 'length'={length} must be non-negative and start ({start}) "
                         f"+ length must not exceed the size of dim {d} ({n})")
    return GetItem((slice(None),) * d + (slice(start, start + length),))(input)


def masked_fill(input, mask, value):
    """``value`` where the boolean ``mask`` is true, ``input`` elsewhere; mask and input
    broadcast together. ``value`` is a number or a 0-d tensor (which gets a gradient); the
    result keeps input's dtype."""
    check_tensor("masked_fill", "input", input)
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        raise TypeError(f"masked_fill: 'mask' must be a boolean Tensor, got "
                        f"{type_name(mask)}")
    if mask.device != input.device:
        raise RuntimeError(f"masked_fill: 'mask' is on {mask.device}, 'input' on "
                           f"{input.device}")
    try:
        np.broadcast_shapes(input.shape, mask.shape)
    except ValueError:
        raise ValueError(f"masked_fill: 'mask' of shape {mask.shape} cannot be broadcast with "
                         f"'input' of shape {input.shape}") from None
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: a tensor 'value' must be 0-d, got shape "
                             f"{value.shape}")
        if value.device != input.device:
            value = to_device(value, input.device)
        if value.dtype != input.dtype:
            value = cast(value, input.dtype)
    else:
        if isinstance(value, np.generic):
            value = value.item()
        if not is_real(value) and not isinstance(value, bool):
            raise TypeError(f"masked_fill: 'value' must be a number or a 0-d Tensor, got "
                            f"{type(value).__name__}")
        if isinstance(value, float) and input.dtype.kind != "f":
            raise TypeError(f"masked_fill: 'value' {value!r} is a float but 'input' has dtype "
                            f"{input.dtype} (PyTorch would truncate it silently)")
        try:
            np.asarray(value, dtype=input.dtype)
        except OverflowError:
            raise ValueError(f"masked_fill: 'value' {value!r} does not fit the input's dtype "
                             f"{input.dtype}") from None
    return MaskedFill(kept_for_backward(mask.data, mask, input, value))(input, value)


def gather(input, dim, index, *, sparse_grad=False):
    """out[i][j][k] = input[index[i][j][k]][j][k] for dim 0 (likewise for the others).
    ``index`` is an integer tensor with input's number of dims and sizes no larger than
    input's off ``dim``; out has index's shape. Every index must lie in [0, input.shape[dim])
    (on a GPU that is checked at the next synchronization). The gradient is scatter-added
    back deterministically (see ``Gather``)."""
    check_tensor("gather", "input", input)
    check_tensor("gather", "index", index)
    if sparse_grad:
        raise ValueError("gather: sparse_grad=True is not supported (minidl has no sparse "
                         "tensors)")
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather: 'index' must be an integer tensor, got dtype {index.dtype} "
                        "(convert with .long())")
    if index.ndim != input.ndim:
        raise ValueError(f"gather: 'index' must have as many dims as 'input' ({input.ndim}), "
                         f"got shape {index.shape}")
    if index.device != input.device:
        raise RuntimeError(f"gather: 'index' is on {index.device}, 'input' on {input.device}")
    d = normalize_dim("gather", dim, input.ndim)
    if input.ndim == 0:
        out = gather(reshape(input, (1,)), 0, Tensor(index.data.reshape(1)))
        return reshape(out, ())
    if any(a > b for e, (a, b) in enumerate(zip(index.shape, input.shape)) if e != d):
        raise ValueError(f"gather: 'index' of shape {index.shape} must be no larger than "
                         f"'input' {input.shape} outside dim {d}")
    idx, n = int64_indices(index.data), input.shape[d]
    if idx.size:
        if n == 0:
            raise IndexError(f"gather: dim {d} of 'input' is empty, so no index is valid")

        def error(idx=idx):                  # the indices as given, not the clamped ones
            lo, hi = int(idx.min()), int(idx.max())
            if 0 <= lo and hi < n:
                return IndexError(f"gather: 'index' held a value outside [0, {n}) in a call "
                                  "since the last synchronization")
            return IndexError(f"gather: index {lo if lo < 0 else hi} is out of range for dim "
                              f"{d} of size {n} (expected 0..{n - 1})")
        # on a GPU the flag is read at the next sync; until then the indices are clamped
        if backend.check_later(((idx < 0) | (idx >= n)).any(), error):
            idx = backend.xp_of(idx).clip(idx, 0, n - 1)
    return Gather(d, kept_for_backward(idx, index, input))(input)


def one_hot(tensor, num_classes=-1):
    """Integer labels (any shape) to one-hot rows: out[..., c] = 1 if tensor[...] == c else 0,
    int64 of shape tensor.shape + (num_classes,). ``num_classes=-1`` takes max label + 1,
    which reads the labels back to the host (a sync on a GPU)."""
    check_tensor("one_hot", "tensor", tensor)
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"one_hot: 'tensor' must hold integer class labels, got dtype "
                        f"{tensor.dtype} (convert with .long())")
    C = check_int("one_hot", "num_classes", num_classes)
    if C < -1:
        raise ValueError(f"one_hot: 'num_classes' must be -1 (inferred) or non-negative, "
                         f"got {C}")
    t = int64_indices(tensor.data)
    xp = backend.xp_of(t)

    def error():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0:
            return ValueError(f"one_hot: class values must be non-negative, got {lo}")
        return ValueError(f"one_hot: class values must be smaller than num_classes ({C}), "
                          f"got {hi}")
    if C == -1:
        if t.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass "
                             "num_classes")
        backend.refuse_in_capture("one_hot with num_classes=-1 (reads the largest label)")
        C = int(t.max()) + 1
        if int(t.min()) < 0:
            raise error()
    elif t.size:
        backend.check_later(((t < 0) | (t >= C)).any(), error)   # bad rows stay all zero
    return Tensor((t[..., None] == xp.arange(C)).astype(np.int64))


def _triangle(op, input, diagonal, lower):
    check_tensor(op, "input", input)
    if input.ndim < 2:
        raise ValueError(f"{op}: 'input' must have at least 2 dimensions, got shape "
                         f"{input.shape}")
    return Triangle(check_int(op, "diagonal", diagonal), lower)(input)


def tril(input, diagonal=0):
    """The lower triangle of the last two axes: entries with col - row <= diagonal, the rest
    zero (``diagonal`` > 0 keeps that many diagonals above the main one, < 0 drops some)."""
    return _triangle("tril", input, diagonal, True)


def triu(input, diagonal=0):
    """The upper triangle of the last two axes: entries with col - row >= diagonal, the rest
    zero."""
    return _triangle("triu", input, diagonal, False)
