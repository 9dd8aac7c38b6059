"""Shape ops: reshape/view, transpose/permute/movedim, flatten, squeeze/unsqueeze,
broadcast_to/expand, repeat/tile, flip/roll, cat/stack/split/chunk/unbind, pad (indexing ops
are in ``indexing.py``). None of them computes new values, so every backward only moves
gradient entries back to where they came from (summing where one input entry fed several;
zero where an entry was overwritten)."""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_int
from ..kernels import threads
from ..autograd import Function
from ..tensor import Tensor
from . import padding
from ._utils import check_shape_arg, check_tensor, normalize_dim, sum_to
from .elementwise import Cast, _promote


class Reshape(Function):
    """y = x viewed with a new shape.  Gradient: gx = gy reshaped to x's shape."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Permute(Function):
    """y = x with axes reordered by ``perm``.  Gradient: gx = gy permuted by the inverse."""

    def __init__(self, perm):
        self.perm = perm

    def forward(self, x):
        return x.transpose(self.perm)

    def backward(self, gy):
        return gy.transpose(np.argsort(self.perm).tolist())


class BroadcastTo(Function):
    """y = x broadcast to ``shape``.  Gradient: gx = sum_to(gy, x.shape)."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return backend.xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class Concat(Function):
    """y = concatenation of the inputs along ``axis``.  Gradient: gy cut back into pieces."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        if self.axis == 1 and all(_channel_major(x) for x in xs):
            return _concat_channel_major(xs)
        return backend.xp_of(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        cuts = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(backend.xp_of(gy).split(gy, cuts, axis=self.axis))


def _channel_major(x):
    """Whether x is an (N, C, H, W) view of C-contiguous (C, N, H, W) memory on the host, the
    layout conv2d and batch norm produce."""
    return (x.ndim == 4 and isinstance(x, np.ndarray) and not backend._is_cupy_array(x)
            and x.transpose(1, 0, 2, 3).flags.c_contiguous)


def _concat_channel_major(xs):
    """Channel concatenation of channel-major inputs into channel-major memory: each input is
    one contiguous block of the output (``np.concatenate`` would write NCHW memory, which
    the next batch norm or conv then copies back into channel-major), copied by the host
    threads, images lo..hi-1 each."""
    N, H, W = xs[0].shape[0], xs[0].shape[2], xs[0].shape[3]
    out = np.empty((sum(x.shape[1] for x in xs), N, H, W), np.result_type(*xs))
    starts = np.cumsum([0] + [x.shape[1] for x in xs]).tolist()

    def part(lo, hi):
        for x, c0, c1 in zip(xs, starts, starts[1:]):
            out[c0:c1, lo:hi] = x.transpose(1, 0, 2, 3)[:, lo:hi]

    threads.parallel(part, N, items=out.size)
    return out.transpose(1, 0, 2, 3)


class Split(Function):
    """(y_1, ..., y_k) = consecutive pieces of x along ``axis`` with the given sizes.
    Gradient: gx = concatenation of the pieces' gradients (zeros for unused pieces)."""

    def __init__(self, sizes, axis):
        self.sizes, self.axis = sizes, axis

    def forward(self, x):
        cuts = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(backend.xp_of(x).split(x, cuts, axis=self.axis))

    def backward(self, *gys):
        return backend.xp_of(gys[0]).concatenate(gys, axis=self.axis)


class Pad(Function):
    """y = x with constant borders; ``widths`` is one (before, after) pair per axis.
    Gradient: gx = the interior of gy (the border entries do not depend on x)."""

    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        return backend.xp_of(x).pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[tuple(slice(b, gy.shape[i] - a) for i, (b, a) in enumerate(self.widths))]


class Flip(Function):
    """y = x reversed along the axes ``dims`` (a view).  Gradient: gx = gy reversed alike."""

    def __init__(self, dims):
        self.dims = dims

    def _flip(self, a):
        return a[tuple(slice(None, None, -1) if d in self.dims else slice(None)
                       for d in range(a.ndim))]

    def forward(self, x):
        return self._flip(x)

    def backward(self, gy):
        return self._flip(gy)


class Roll(Function):
    """y = x shifted cyclically by ``shifts[i]`` along ``dims[i]`` (of the flattened x when
    ``dims`` is None): y[(j + s) mod n] = x[j].  Gradient: gx = gy rolled by -shifts."""

    def __init__(self, shifts, dims):
        self.shifts, self.dims = shifts, dims          # tuples; dims None: one shift

    def _roll(self, a, sign):
        xp = backend.xp_of(a)
        if self.dims is None:
            return xp.roll(a, sign * self.shifts[0])
        return xp.roll(a, tuple(sign * s for s in self.shifts), axis=self.dims)

    def forward(self, x):
        return self._roll(x, 1)

    def backward(self, gy):
        return self._roll(gy, -1)


class Repeat(Function):
    """y = x tiled ``reps[i]`` times along axis i (x first gets leading size-1 axes up to
    len(reps)): y[..., k * n_i + j, ...] = x[..., j, ...] for 0 <= k < reps[i].
    Gradient: gx[j] = sum over k of gy[k * n_i + j]: gy viewed as (r_0, n_0, r_1, n_1, ...)
    summed over the r axes."""

    def __init__(self, reps):
        self.reps = reps

    def forward(self, x):
        self.in_shape = x.shape
        lead = len(self.reps) - x.ndim
        self.shape = (1,) * lead + x.shape
        return backend.xp_of(x).tile(x.reshape(self.shape), self.reps)

    def backward(self, gy):
        pairs = [v for r, n in zip(self.reps, self.shape) for v in (r, n)]
        g = gy.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2)))
        return g.reshape(self.in_shape)


class Unbind(Function):
    """(y_0, ..., y_{n-1}) = the slices x[..., k, ...] along ``axis`` (views).
    Gradient: gx = the slices' gradients stacked along ``axis`` (zeros for unused slices)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        head = (slice(None),) * self.axis
        return tuple(x[head + (k,)] for k in range(x.shape[self.axis]))

    def backward(self, *gys):
        return backend.xp_of(gys[0]).stack(gys, axis=self.axis)


# ---------------------------------------------------------------------------------------------

def reshape(input, shape):
    """Same data with a new shape; one entry may be -1 (inferred)."""
    check_tensor("reshape", "input", input)
    shape = check_shape_arg("reshape", shape)
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
            -1 not in shape and known != input.numel()) or (
            -1 in shape and (known == 0 or input.numel() % known)):
        raise ValueError(f"reshape: cannot view a tensor of shape {input.shape} "
                         f"({input.numel()} elements) as shape {shape}")
    return Reshape(shape)(input)


view = reshape


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one."""
    check_tensor("flatten", "input", input)
    if input.ndim == 0:
        return reshape(input, (1,))
    s = normalize_dim("flatten", start_dim, input.ndim, "start_dim")
    e = normalize_dim("flatten", end_dim, input.ndim, "end_dim")
    if s > e:
        raise ValueError(f"flatten: start_dim ({start_dim}) comes after end_dim ({end_dim})")
    shape = input.shape[:s] + (-1,) + input.shape[e + 1:]
    if 0 in input.shape:
        n = 1
        for d in input.shape[s:e + 1]:
            n *= d
        shape = input.shape[:s] + (n,) + input.shape[e + 1:]
    return Reshape(shape)(input)


def permute(input, dims):
    """Reorder the axes: output axis i is input axis dims[i]."""
    check_tensor("permute", "input", input)
    dims = check_shape_arg("permute", dims, "dims")
    perm = [normalize_dim("permute", d, input.ndim, "dims") for d in dims]
    if sorted(perm) != list(range(input.ndim)):
        raise ValueError(f"permute: 'dims' must be a permutation of 0..{input.ndim - 1}, "
                         f"got {dims}")
    return Permute(tuple(perm))(input)


def transpose(input, dim0=None, dim1=None):
    """Swap two axes, or reverse all axes when neither is given (``Tensor.T``)."""
    check_tensor("transpose", "input", input)
    if dim0 is None and dim1 is None:
        return Permute(tuple(reversed(range(input.ndim))))(input)
    if dim0 is None or dim1 is None:
        raise ValueError("transpose: give both dim0 and dim1, or neither")
    a = normalize_dim("transpose", dim0, input.ndim, "dim0")
    b = normalize_dim("transpose", dim1, input.ndim, "dim1")
    if input.ndim == 0:                      # as PyTorch: dims 0 / -1 of a 0-d tensor
        return Permute(())(input)
    perm = list(range(input.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return Permute(tuple(perm))(input)


def squeeze(input, dim=None):
    """Drop size-1 axes: all of them, or those of ``dim`` (an int or a tuple of ints, as in
    PyTorch 2); a listed axis that is not of size 1 stays."""
    check_tensor("squeeze", "input", input)
    if dim is None:
        shape = tuple(n for n in input.shape if n != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        drop = {normalize_dim("squeeze", d, input.ndim) for d in dims} if input.ndim else set()
        shape = tuple(n for k, n in enumerate(input.shape) if not (k in drop and n == 1))
    return Reshape(shape)(input)


def unsqueeze(input, dim):
    """Insert a size-1 axis at position ``dim`` (-ndim-1 <= dim <= ndim)."""
    check_tensor("unsqueeze", "input", input)
    d = normalize_dim("unsqueeze", dim, input.ndim + 1)
    return Reshape(input.shape[:d] + (1,) + input.shape[d:])(input)


def broadcast_to(input, shape):
    """Broadcast to ``shape`` by NumPy's rules (a view; gradient sums back)."""
    check_tensor("broadcast_to", "input", input)
    shape = check_shape_arg("broadcast_to", shape)
    try:
        if np.broadcast_shapes(input.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {input.shape} to {shape}") \
            from None
    return BroadcastTo(shape)(input)


def expand(input, shape):
    """PyTorch's expand: like broadcast_to, where -1 keeps that axis's size."""
    check_tensor("expand", "input", input)
    shape = list(check_shape_arg("expand", shape))
    lead = len(shape) - input.ndim
    for i, s in enumerate(shape):
        if s == -1:
            if i < lead:
                raise ValueError(f"expand: -1 is not allowed for new leading dimension {i}")
            shape[i] = input.shape[i - lead]
    return broadcast_to(input, tuple(shape))


def _check_seq(op, tensors):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{op}: 'tensors' must be a non-empty list or tuple of Tensors, "
                        f"got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        check_tensor(op, f"tensors[{i}]", t)
    return list(tensors)


def cat(tensors, dim=0):
    """Concatenate along an existing axis; all other axes must match. Mixed dtypes promote
    as in PyTorch (``_common_dtype``)."""
    tensors = _check_seq("cat", tensors)
    ref = tensors[0]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: tensors[{i}] is 0-d and has no dimension to concatenate "
                             "along; use stack, or reshape it to (1,)")
    d = normalize_dim("cat", dim, ref.ndim)
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(
                a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape)) if k != d):
            raise ValueError(f"cat: tensors[{i}] has shape {t.shape}, which does not match "
                             f"tensors[0] {ref.shape} outside dim {d}")
    return Concat(d)(*_common_dtype(tensors))


def _common_dtype(tensors):
    """The tensors cast (differentiably) to PyTorch's promoted type of them all: float32 with
    int64 stays float32, where NumPy's concatenate would make float64."""
    r = _promote([t.dtype for t in tensors])
    return [t if t.dtype == r else Cast(r)(t) for t in tensors]


concatenate = cat


def stack(tensors, dim=0):
    """Join equally shaped tensors along a new axis ``dim`` (mixed dtypes: as ``cat``)."""
    tensors = _check_seq("stack", tensors)
    ref = tensors[0]
    for i, t in enumerate(tensors):
        if t.shape != ref.shape:
            raise ValueError(f"stack: tensors[{i}] has shape {t.shape}, expected "
                             f"{ref.shape} like tensors[0]")
    d = normalize_dim("stack", dim, ref.ndim + 1)
    return Concat(d)(*[unsqueeze(t, d) for t in _common_dtype(tensors)])


def split(input, split_size_or_sections, dim=0):
    """Cut into pieces along ``dim``: of size ``split_size`` each (the last may be smaller),
    or of the listed sizes, which must add up to the axis length. Returns a tuple."""
    check_tensor("split", "input", input)
    d = normalize_dim("split", dim, input.ndim)
    n = input.shape[d]
    arg = split_size_or_sections
    if isinstance(arg, (int, np.integer)) and not isinstance(arg, bool):
        if arg <= 0:
            raise ValueError(f"split: split_size must be positive, got {arg}")
        sizes = [min(arg, n - s) for s in range(0, n, arg)] or [0]
    else:
        sizes = list(check_shape_arg("split", arg, "split_size_or_sections"))
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} must be non-negative and add up to "
                             f"{n}, the size of dim {d}")
    out = Split(sizes, d)(input)
    return out if isinstance(out, tuple) else (out,)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of size ceil(n / chunks) (fewer if n is small; an empty
    dim gives ``chunks`` empty pieces, as in PyTorch)."""
    check_tensor("chunk", "input", input)
    chunks = check_int("chunk", "chunks", chunks, 1)
    n = input.shape[normalize_dim("chunk", dim, input.ndim)]
    if n == 0:                              # PyTorch: ``chunks`` empty pieces
        return split(input, [0] * chunks, dim)
    return split(input, -(-n // chunks), dim)


def pad(input, pad, mode="constant", value=None):
    """Pad, PyTorch-style: ``pad`` = (left, right) for the last axis, then (top, bottom) for
    the one before, and so on. ``mode``: 'constant' (fill with ``value``, default 0; negative
    widths crop), 'reflect' (mirror without repeating the edge; widths < the dim's size),
    'replicate' (repeat the edge) or 'circular' (wrap around, at most once); the last three
    pad the last 1, 2 or 3 dims of an input with 1 or 2 more dims (see ``padding.py``)."""
    check_tensor("pad", "input", input)
    pad = check_shape_arg("pad", pad, "pad")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: 'pad' needs an even number of entries, at most 2 per "
                         f"dimension ({2 * input.ndim}), got {len(pad)}")
    if mode != "constant" or any(p < 0 for p in pad):
        return padding.pad_other(input, pad, mode, value)
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return Pad(tuple(widths), padding.fill_value(value))(input)


def flip(input, dims):
    """Reverse the order of the entries along each axis in ``dims`` (an int or a sequence)."""
    check_tensor("flip", "input", input)
    dims = check_shape_arg("flip", dims, "dims")
    axes = [normalize_dim("flip", d, input.ndim, "dims") for d in dims]
    if len(set(axes)) != len(axes):
        raise ValueError(f"flip: 'dims' has repeated dimensions: {dims}")
    return Flip(frozenset(axes) if input.ndim else frozenset())(input)


def roll(input, shifts, dims=None):
    """Shift the entries cyclically by ``shifts[i]`` along ``dims[i]``; without ``dims``, the
    flattened tensor is rolled by one shift and the shape restored."""
    check_tensor("roll", "input", input)
    shifts = check_shape_arg("roll", shifts, "shifts")
    if dims is None or input.ndim == 0:
        if len(shifts) != 1:
            raise ValueError(f"roll: without 'dims' the flattened tensor is rolled, so "
                             f"'shifts' must be one int, got {shifts}")
        return Roll(shifts, None)(input)
    dims = check_shape_arg("roll", dims, "dims")
    if len(dims) != len(shifts):
        raise ValueError(f"roll: 'shifts' and 'dims' must have the same length, got "
                         f"shifts={shifts} and dims={dims}")
    return Roll(shifts, tuple(normalize_dim("roll", d, input.ndim, "dims") for d in dims))(input)


def _check_reps(op, arg, reps):
    reps = check_shape_arg(op, reps, arg)
    if any(r < 0 for r in reps):
        raise ValueError(f"{op}: '{arg}' must be non-negative, got {reps}")
    return reps


def repeat(input, *sizes):
    """PyTorch's ``Tensor.repeat``: tile the tensor ``sizes[i]`` times along axis i;
    ``len(sizes)`` may exceed ``input.ndim`` (new leading axes), not fall short of it.
    ``repeat(x, 2, 3)`` and ``repeat(x, (2, 3))`` are the same. (Not NumPy's repeat: for
    that, see torch's repeat_interleave, which minidl does not have.)"""
    check_tensor("repeat", "input", input)
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    sizes = _check_reps("repeat", "sizes", tuple(sizes))
    if len(sizes) < input.ndim:
        raise ValueError(f"repeat: 'sizes' needs at least one entry per dimension of the "
                         f"input ({input.ndim}), got {sizes}")
    return Repeat(sizes)(input)


def tile(input, dims):
    """Tile the tensor ``dims[i]`` times along axis i; a ``dims`` shorter than ``input.ndim``
    is padded with leading 1s (``torch.tile``); otherwise as ``repeat``."""
    check_tensor("tile", "input", input)
    dims = _check_reps("tile", "dims", dims)
    return Repeat((1,) * (input.ndim - len(dims)) + dims)(input)


def unbind(input, dim=0):
    """The slices along ``dim``, as a tuple of tensors without that axis."""
    check_tensor("unbind", "input", input)
    if input.ndim == 0:
        raise IndexError("unbind: a 0-d tensor has no dimension to unbind")
    d = normalize_dim("unbind", dim, input.ndim)
    return Unbind(d)(input) if input.shape[d] else ()


def movedim(input, source, destination):
    """Move axes ``source`` to positions ``destination`` (ints or equally long sequences);
    the other axes keep their order."""
    check_tensor("movedim", "input", input)
    src = check_shape_arg("movedim", source, "source")
    dst = check_shape_arg("movedim", destination, "destination")
    if len(src) != len(dst):
        raise ValueError(f"movedim: 'source' {src} and 'destination' {dst} must have the same "
                         "number of dims")
    if input.ndim == 0:
        return Permute(())(input)
    src = [normalize_dim("movedim", d, input.ndim, "source") for d in src]
    dst = [normalize_dim("movedim", d, input.ndim, "destination") for d in dst]
    for name, dims in (("source", src), ("destination", dst)):
        if len(set(dims)) != len(dims):
            raise ValueError(f"movedim: '{name}' has repeated dimensions: {dims}")
    order = [d for d in range(input.ndim) if d not in src]
    for to, frm in sorted(zip(dst, src)):
        order.insert(to, frm)
    return Permute(tuple(order))(input)


moveaxis = movedim

