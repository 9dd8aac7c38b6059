"""2-D pooling over sliding windows: max_pool2d and avg_pool2d, with PyTorch's arguments and
semantics (adaptive and global pooling are in ``adaptive_pooling.py``).

Windows are visited with one strided slice per kernel offset (a loop over KH*KW offsets, never
over pixels), on the channel-major view ``x.transpose(1, 0, 2, 3)`` that conv2d produces, so
the usual CNHW memory is read in place; results are returned as NCHW views of CNHW memory too.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_bool, check_int
from ..autograd import Function
from ._utils import accepts_unbatched, check_float, check_pair


def _pool_len(size, k, s, p, d, ceil_mode):
    """Output length along one axis (PyTorch's rule): floor or ceil of
    (size + 2p - d(k-1) - 1) / s, plus 1; with ceil_mode a last window that would start in
    the right padding (at or past size + p) is dropped."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    n = -(-span // s) + 1
    return n - 1 if (n - 1) * s >= size + p else n


def _geometry(x_shape, k, s, p, d, ceil_mode):
    """(OH, OW), and the padding that ceil_mode's last windows need past the bottom/right
    padding (they may stick out of the padded input)."""
    out, extra = [], []
    for size, kk, ss, pp, dd in zip(x_shape[2:], k, s, p, d):
        n = _pool_len(size, kk, ss, pp, dd, ceil_mode)
        out.append(n)
        extra.append(max(0, (n - 1) * ss + dd * (kk - 1) + 1 - (size + 2 * pp)))
    return tuple(out), tuple(extra)


def _window(i, j, stride, out_hw):
    """Slices picking, for every output pixel, the padded input at offset (i, j) from the
    window's corner (offsets are kernel indices times the dilation)."""
    (sh, sw), (OH, OW) = stride, out_hw
    return (slice(None), slice(None), slice(i, i + sh * (OH - 1) + 1, sh),
            slice(j, j + sw * (OW - 1) + 1, sw))


def _offsets(kernel_size, dilation):
    """(i, j) offsets of a window's cells in row-major kernel order."""
    (KH, KW), (dh, dw) = kernel_size, dilation
    return [(a * dh, b * dw) for a in range(KH) for b in range(KW)]


def _overlapping(kernel_size, stride, dilation=(1, 1)):
    """Whether two (window, offset) pairs can reach the same input pixel (then gradients must
    be added): unless on both axes the kernel is 1 or the windows' spans are disjoint."""
    return not all(k == 1 or s >= d * (k - 1) + 1
                   for k, s, d in zip(kernel_size, stride, dilation))


def _padded(x, padding, extra, fill):
    """x (N, C, H, W) -> (C, N, H + 2*PH + EH, W + 2*PW + EW) channel-major, with constant
    borders (``extra``: more at the bottom/right)."""
    xp = backend.xp_of(x)
    N, C, H, W = x.shape
    (ph, pw), (eh, ew) = padding, extra
    xt = x.transpose(1, 0, 2, 3)
    if ph == pw == eh == ew == 0:
        return xt
    out = xp.full((C, N, H + 2 * ph + eh, W + 2 * pw + ew), fill, dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = xt
    return out


def _unpad(g, x_shape, padding):
    """Crop the channel-major padded gradient back to an (N, C, H, W) view."""
    N, C, H, W = x_shape
    ph, pw = padding
    return g[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max over i < KH, j < KW of xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]
    (padding is -inf, never chosen); indices (return_indices) = h * W + w of that maximum in
    the input, the first one in row-major window order, or the window's last NaN (as
    PyTorch).

    Gradient: each window's gy goes to one element, its first maximum in row-major window
    order (ties are broken the same way every time): gx[argmax] += gy. The argmax is not
    stored: backward finds, offset by offset, the window entries equal to y that no earlier
    offset has claimed (elementwise max and compares are several times faster than masked
    copies that track an index in forward). There the padding is NaN, which equals nothing,
    so a window of -inf inputs passes its gradient to its first input, not to the padding.
    A window whose maximum is NaN (a NaN input) passes no gradient; PyTorch sends it to the
    NaN.
    """

    def __init__(self, kernel_size, stride, padding, dilation=(1, 1), ceil_mode=False,
                 return_indices=False):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.return_indices = dilation, ceil_mode, return_indices

    def forward(self, x):
        xp = backend.xp_of(x)
        s = self.stride
        self.out_hw, self.extra = _geometry(x.shape, self.kernel_size, s, self.padding,
                                            self.dilation, self.ceil_mode)
        offsets = _offsets(self.kernel_size, self.dilation)
        xpad = _padded(x, self.padding, self.extra, -np.inf)             # (C, N, Hp, Wp)
        y = xpad[_window(*offsets[0], s, self.out_hw)].copy()            # (C, N, OH, OW)
        for i, j in offsets[1:]:
            xp.maximum(y, xpad[_window(i, j, s, self.out_hw)], out=y)
        self.save_for_backward(x, y)
        if not self.return_indices:
            return y.transpose(1, 0, 2, 3)
        return y.transpose(1, 0, 2, 3), self._indices(xpad, y, x.shape).transpose(1, 0, 2, 3)

    def _indices(self, xpad, y, x_shape):
        """(C, N, OH, OW) int64 flat input indices of the maxima (see the class docstring)."""
        xp = backend.xp_of(y)
        H, W = x_shape[2:]
        (sh, sw), (ph, pw), (OH, OW) = self.stride, self.padding, self.out_hw
        rows = xp.arange(OH, dtype=np.int64) * sh - ph       # input row of each window's top
        cols = xp.arange(OW, dtype=np.int64) * sw - pw
        idx = xp.zeros(y.shape, dtype=np.int64)
        claimed = xp.zeros(y.shape, dtype=bool)
        for i, j in _offsets(self.kernel_size, self.dilation):
            h, w = rows + i, cols + j
            inside = ((h >= 0) & (h < H))[:, None] & ((w >= 0) & (w < W))[None, :]
            v = xpad[_window(i, j, self.stride, self.out_hw)]
            first = (v == y) & inside & ~claimed
            claimed |= first
            idx = xp.where(first | (v != v), h[:, None] * W + w[None, :], idx)
        return idx

    def backward(self, gy, gindices=None):
        x, y = self.saved
        xp = backend.xp_of(gy)
        s = self.stride
        xpad = _padded(x, self.padding, self.extra, np.nan)  # never equal to y (see docstring)
        gt = gy.transpose(1, 0, 2, 3)                                    # (C, N, OH, OW)
        gx = xp.zeros(xpad.shape, gy.dtype)
        overlapping = _overlapping(self.kernel_size, s, self.dilation)
        offsets = _offsets(self.kernel_size, self.dilation)
        claimed = None
        for k, (i, j) in enumerate(offsets):
            win = _window(i, j, s, self.out_hw)
            hit = xpad[win] == y
            if claimed is None:
                claimed = hit
            else:
                hit &= ~claimed
                if k < len(offsets) - 1:
                    claimed |= hit
            if overlapping:
                gx[win] += gt * hit
            else:                   # windows are disjoint: plain (faster) strided stores
                gx[win] = gt * hit
        return _unpad(gx, x.shape, self.padding)


def _window_counts(xp, n_out, size, k, s, p, include_pad):
    """Per output position along one axis, the cells of a window that avg_pool2d counts: those
    inside the padded input (include_pad; a ceil_mode window can stick out past it), or those
    inside the input."""
    start = xp.arange(n_out) * s - p
    end = xp.minimum(start + k, size + p)
    if include_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)


class AvgPool2d(Function):
    """y[n, c, oh, ow] = (sum of the window of zero-padded x) / divisor[oh, ow].

    divisor = divisor_override if given; else the number of the window's cells inside the
    padded input (count_include_pad=True: KH*KW except for ceil_mode's last windows) or inside
    the input (count_include_pad=False). Both factor as counts_h[oh] * counts_w[ow].

    Gradient: gx[window pixel] += gy / divisor for every window that covers it.
    """

    def __init__(self, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def _scale(self, xp, x_shape, dtype):
        """1 / divisor: a Python float when all windows share it, else an (OH, OW) array."""
        if self.divisor_override is not None:
            return 1.0 / self.divisor_override
        args = list(zip(self.out_hw, x_shape[2:], self.kernel_size, self.stride, self.padding))
        counts = [_window_counts(np, *a, self.count_include_pad) for a in args]
        if all(c.min() == c.max() for c in counts):
            return 1.0 / int(counts[0][0] * counts[1][0])
        ch, cw = (_window_counts(xp, *a, self.count_include_pad) for a in args)
        return (1.0 / (ch[:, None] * cw[None, :])).astype(dtype)

    def forward(self, x):
        xp = backend.xp_of(x)
        s = self.stride
        self.out_hw, self.extra = _geometry(x.shape, self.kernel_size, s, self.padding,
                                            (1, 1), self.ceil_mode)
        offsets = _offsets(self.kernel_size, (1, 1))
        xpad = _padded(x, self.padding, self.extra, 0)
        y = xpad[_window(*offsets[0], s, self.out_hw)].copy()            # (C, N, OH, OW)
        for i, j in offsets[1:]:
            y += xpad[_window(i, j, s, self.out_hw)]
        self.scale = self._scale(xp, x.shape, x.dtype)
        y *= self.scale
        self.x_shape, self.pad_shape = x.shape, xpad.shape
        return y.transpose(1, 0, 2, 3)

    def backward(self, gy):
        xp = backend.xp_of(gy)
        s = self.stride
        g = gy.transpose(1, 0, 2, 3) * self.scale                        # (C, N, OH, OW)
        gx = xp.zeros(self.pad_shape, gy.dtype)
        overlapping = _overlapping(self.kernel_size, s)
        for i, j in _offsets(self.kernel_size, (1, 1)):
            if overlapping:
                gx[_window(i, j, s, self.out_hw)] += g
            else:
                gx[_window(i, j, s, self.out_hw)] = g
        return _unpad(gx, self.x_shape, self.padding)


# ---------------------------------------------------------------------------------------------
# public wrappers


def _check_input(op, x):
    check_float(op, "input", x)
    if x.ndim != 4:
        raise ValueError(f"{op}: 'input' must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{x.shape}")


def _window_args(op, input, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked (kernel, stride, padding, dilation, ceil_mode); stride None (or empty, as
    PyTorch allows) means the kernel size."""
    _check_input(op, input)
    k = check_pair(op, "kernel_size", kernel_size, 1)
    empty = isinstance(stride, (tuple, list)) and len(stride) == 0
    s = k if stride is None or empty else check_pair(op, "stride", stride, 1)
    p = check_pair(op, "padding", padding, 0)
    d = check_pair(op, "dilation", dilation, 1)
    ceil_mode = check_bool(op, "ceil_mode", ceil_mode)
    for axis, size, kk, ss, pp, dd in zip(("height", "width"), input.shape[2:], k, s, p, d):
        if 2 * pp > kk:
            raise ValueError(f"{op}: padding {pp} must be at most half the kernel {axis} {kk}")
        span = dd * (kk - 1) + 1
        # a kernel larger than the padded input leaves no window, unless ceil_mode keeps one
        # that overhangs the end (PyTorch's rule)
        if _pool_len(size, kk, ss, pp, dd, ceil_mode) < 1:
            what = f"kernel {axis} {kk}" if dd == 1 else \
                f"dilated kernel {axis} {span} (kernel {kk}, dilation {dd})"
            raise ValueError(f"{op}: {what} is larger than the padded input {axis} "
                             f"{size + 2 * pp} (input {input.shape}, padding {pp})")
        _check_windows_reach(op, axis, size, kk, ss, pp, dd)
    return k, s, p, d, ceil_mode


def _check_windows_reach(op, axis, size, k, s, p, d):
    """A dilated window that starts in the padding can step over the whole input (taps at
    -1 and 1 of a 1-row input): its max would be -inf with no position to send the gradient
    to (PyTorch returns an index outside the input there). Only windows starting before the
    input can miss it: a later one's first tap lies inside."""
    for o in range(-(-p // s)):
        start = o * s - p
        if not any(0 <= start + j * d < size for j in range(k)):
            raise ValueError(
                f"{op}: the window at output {axis} {o} (taps at {axis} "
                f"{list(range(start, start + k * d, d))}) covers no input {axis} (size "
                f"{size}): with dilation {d}, padding {p} leaves it only padding")


@accepts_unbatched
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over dilated KH x KW windows (padding is -inf), as ``torch.nn.functional.max_pool2d``.

    Args: input (N, C, H, W); kernel_size, stride (default: kernel_size), padding (at most
    half the kernel), dilation: int or (h, w); ceil_mode: round the output size up (a last
    window must still start inside the input or the left padding); return_indices: also
    return the maxima's positions.
    Returns: (N, C, OH, OW), OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1 (ceil with
    ceil_mode); with return_indices a pair (y, indices), indices int64 h * W + w in the input.
    """
    op = "max_pool2d"
    k, s, p, d, ceil_mode = _window_args(op, input, kernel_size, stride, padding, dilation,
                                         ceil_mode)
    return_indices = check_bool(op, "return_indices", return_indices)
    return MaxPool2d(k, s, p, d, ceil_mode, return_indices)(input)


@accepts_unbatched
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over KH x KW windows of zero-padded input, as ``torch.nn.functional.avg_pool2d``.

    Args: input, kernel_size, stride, padding, ceil_mode as in ``max_pool2d``;
    count_include_pad: the divisor counts the window's padding cells (only those inside the
    padded input); else only its cells inside the input; divisor_override: a nonzero int
    divisor for every window.
    Returns: (N, C, OH, OW), sizes as in ``max_pool2d``.
    """
    op = "avg_pool2d"
    k, s, p, _, ceil_mode = _window_args(op, input, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = check_bool(op, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        divisor_override = check_int(op, "divisor_override", divisor_override, or_none=True)
        if divisor_override == 0:
            raise ValueError(f"{op}: 'divisor_override' must not be zero, got 0")
    return AvgPool2d(k, s, p, ceil_mode, count_include_pad, divisor_override)(input)

