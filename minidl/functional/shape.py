"""Shape ops: reshape/view, transpose/permute, flatten, squeeze/unsqueeze, broadcast_to/expand,
indexing, cat/stack/split/chunk, pad.  None of them changes values, so every backward only moves
gradient entries back to where they came from (summing where one input entry fed several)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..kernels import threads
from ..autograd import Function
from ..tensor import Tensor
from ._utils import check_shape_arg, check_tensor, normalize_dim, sum_to


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


def _check_mask_shapes(items, shape):
    """Raise NumPy's IndexError when a boolean mask does not match the axes it covers (its
    integer positions would index them without complaint)."""
    def width(it):
        if it is None or it is Ellipsis or isinstance(it, (bool, np.bool_)) or (
                hasattr(it, "dtype") and it.dtype.kind == "b" and it.ndim == 0):
            return 0
        return it.ndim if _is_mask(it) else 1
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
    """Drop size-1 axes (only ``dim`` when given; a no-op if that axis is not size 1)."""
    check_tensor("squeeze", "input", input)
    if dim is None:
        shape = tuple(n for n in input.shape if n != 1)
    else:
        d = normalize_dim("squeeze", dim, input.ndim)
        shape = input.shape if input.ndim == 0 or input.shape[d] != 1 else \
            input.shape[:d] + input.shape[d + 1:]
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


def _index_component(it):
    if isinstance(it, Tensor):
        return it.data
    if isinstance(it, list):
        return np.asarray(it)
    return it


def getitem(input, index):
    """input[index] with slices, ints, None, ..., integer arrays/tensors and boolean masks."""
    check_tensor("getitem", "input", input)
    if isinstance(index, tuple):
        index = tuple(_index_component(i) for i in index)
    else:
        index = _index_component(index)
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if hasattr(it, "dtype") and it.dtype.kind not in "biu":
            raise IndexError(f"getitem: index arrays must be integer or boolean, got dtype "
                             f"{it.dtype}")
        if hasattr(it, "dtype") and type(it) is not type(input.data) and it.ndim > 0:
            index = tuple(backend.to_device(i, input.device) if hasattr(i, "dtype") else i
                          for i in items)
            break
    try:
        return GetItem(index)(input)
    except IndexError as exc:
        raise IndexError(f"getitem: {exc} (tensor shape {input.shape})") from None


def _check_seq(op, tensors):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{op}: 'tensors' must be a non-empty list or tuple of Tensors, "
                        f"got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        check_tensor(op, f"tensors[{i}]", t)
    return list(tensors)


def cat(tensors, dim=0):
    """Concatenate along an existing axis; all other axes must match."""
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
    return Concat(d)(*tensors)


concatenate = cat


def stack(tensors, dim=0):
    """Join equally shaped tensors along a new axis ``dim``."""
    tensors = _check_seq("stack", tensors)
    ref = tensors[0]
    for i, t in enumerate(tensors):
        if t.shape != ref.shape:
            raise ValueError(f"stack: tensors[{i}] has shape {t.shape}, expected "
                             f"{ref.shape} like tensors[0]")
    d = normalize_dim("stack", dim, ref.ndim + 1)
    return Concat(d)(*[unsqueeze(t, d) for t in tensors])


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
    """Split into ``chunks`` pieces of size ceil(n / chunks) (fewer if n is small)."""
    check_tensor("chunk", "input", input)
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError(f"chunk: 'chunks' must be a positive int, got {chunks!r}")
    n = input.shape[normalize_dim("chunk", dim, input.ndim)]
    return split(input, max(1, -(-n // chunks)), dim)


def pad(input, pad, mode="constant", value=0.0):
    """Pad with a constant, PyTorch-style: ``pad`` = (left, right) for the last axis,
    then (top, bottom) for the one before, and so on."""
    check_tensor("pad", "input", input)
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = check_shape_arg("pad", pad, "pad")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: 'pad' needs an even number of entries, at most 2 per "
                         f"dimension ({2 * input.ndim}), got {len(pad)}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding is not supported, got {pad}")
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return Pad(tuple(widths), value)(input)
