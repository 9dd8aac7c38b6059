"""Adaptive and global pooling: adaptive_avg_pool2d, adaptive_max_pool2d, global_avg_pool2d,
with PyTorch's bins: along an axis of size H cut into OH bins, bin i holds rows
floor(i*H/OH) .. ceil((i+1)*H/OH) - 1. When OH divides H the bins are equal blocks and the
pooling reuses a block mean or ``max_pool2d``'s window path; otherwise the loops run over
output rows and columns (mean) or over the offsets inside a bin (max), never over pixels.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_bool
from ..autograd import Function
from ._utils import accepts_unbatched, check_pair
from .pooling import MaxPool2d, _check_input


class BlockMean2d(Function):
    """y[n, c, i, j] = mean of x over the non-overlapping block (i*BH.., j*BW..) of size
    BH x BW (adaptive average pooling when the output size divides the input; BH = H and
    BW = W is global average pooling).

    Gradient: gx[n, c, h, w] = gy[n, c, h // BH, w // BW] / (BH*BW).
    """

    def __init__(self, block):
        self.block = block

    def forward(self, x):
        N, C, H, W = x.shape
        bh, bw = self.block
        self.x_shape = x.shape
        return x.reshape(N, C, H // bh, bh, W // bw, bw).mean(axis=(3, 5))

    def backward(self, gy):
        xp = backend.xp_of(gy)
        N, C, H, W = self.x_shape
        bh, bw = self.block
        g = (gy * (1.0 / (bh * bw)))[:, :, :, None, :, None]
        return xp.broadcast_to(g, (N, C, H // bh, bh, W // bw, bw)).reshape(N, C, H, W)


def _bins(size, n):
    """PyTorch's adaptive bins along one axis: [floor(i*size/n), ceil((i+1)*size/n))."""
    return [(i * size // n, -(-(i + 1) * size // n)) for i in range(n)]


class AdaptiveAvgPool2d(Function):
    """y[n, c, i, j] = mean of x[n, c, h0_i:h1_i, w0_j:w1_j] over PyTorch's bins (``_bins``;
    they may differ in size and overlap). The mean factors: rows first, then columns.

    Gradient: gx[n, c, h, w] = sum over the bins (i, j) that hold (h, w) of
    gy[n, c, i, j] / ((h1_i - h0_i) * (w1_j - w0_j)).
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = backend.xp_of(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size
        self.rows, self.cols, self.x_shape = _bins(H, OH), _bins(W, OW), x.shape
        t = xp.empty((N, C, OH, W), x.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            t[:, :, i] = x[:, :, h0:h1].mean(axis=2)
        y = xp.empty((N, C, OH, OW), x.dtype)
        for j, (w0, w1) in enumerate(self.cols):
            y[:, :, :, j] = t[:, :, :, w0:w1].mean(axis=3)
        return y

    def backward(self, gy):
        xp = backend.xp_of(gy)
        N, C, H, W = self.x_shape
        t = xp.zeros((N, C, gy.shape[2], W), gy.dtype)
        for j, (w0, w1) in enumerate(self.cols):
            t[:, :, :, w0:w1] += gy[:, :, :, j:j + 1] * (1.0 / (w1 - w0))
        gx = xp.zeros((N, C, H, W), gy.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            gx[:, :, h0:h1] += t[:, :, i:i + 1] * (1.0 / (h1 - h0))
        return gx


class AdaptiveMaxPool2d(Function):
    """y[n, c, i, j] = max of x[n, c, h0_i:h1_i, w0_j:w1_j] over PyTorch's bins (``_bins``);
    indices = h * W + w of the bin's first maximum in row-major order, or of its last NaN
    (as PyTorch).

    Bins hold up to LH x LW cells; offset (a, b) gathers from every bin the cell
    (min(h0 + a, h1 - 1), min(w0 + b, w1 - 1)): a shorter bin repeats its last cell, which
    changes neither its maximum nor which cell comes first.

    Gradient: gx[n, c, argmax] += gy[n, c, i, j]; a bin whose maximum is NaN passes none (as
    max_pool2d).
    """

    def __init__(self, output_size, return_indices=False):
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        xp = backend.xp_of(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size
        i, j = xp.arange(OH, dtype=np.int64), xp.arange(OW, dtype=np.int64)
        h0, h1 = i * H // OH, ((i + 1) * H + OH - 1) // OH
        w0, w1 = j * W // OW, ((j + 1) * W + OW - 1) // OW
        LH = max(b - a for a, b in _bins(H, OH))
        LW = max(b - a for a, b in _bins(W, OW))
        y = idx = None
        for a in range(LH):
            h = xp.minimum(h0 + a, h1 - 1)[:, None]
            for b in range(LW):
                w = xp.minimum(w0 + b, w1 - 1)[None, :]
                v = x[:, :, h, w]                                        # (N, C, OH, OW)
                if y is None:
                    y, idx = v, xp.broadcast_to(h * W + w, v.shape)
                    continue
                take = (v > y) | (v != v)          # strictly greater: the first maximum
                y = xp.where(take, v, y)
                idx = xp.where(take, h * W + w, idx)
        self.x_shape = x.shape
        self.save_for_backward(y, idx)
        return (y, idx.copy()) if self.return_indices else y

    def backward(self, gy, gindices=None):
        y, idx = self.saved
        xp = backend.xp_of(gy)
        N, C, H, W = self.x_shape
        g = xp.where(y == y, gy, gy.dtype.type(0))        # NaN maxima pass no gradient
        gx = xp.zeros((N * C, H * W), gy.dtype)
        plane = xp.arange(N * C)[:, None]
        backend.scatter_add(gx, (plane, idx.reshape(N * C, -1)), g.reshape(N * C, -1))
        return gx.reshape(N, C, H, W)


# ---------------------------------------------------------------------------------------------

def _output_size(op, input, output_size):
    """Checked (OH, OW): an int or a pair, where None keeps that input size."""
    _check_input(op, input)
    if min(input.shape[2:]) < 1:
        raise ValueError(f"{op}: the input's height and width must be non-zero, got shape "
                         f"{input.shape}")
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(n if o is None else o for o, n in zip(output_size, input.shape[2:]))
    return check_pair(op, "output_size", output_size, 1)


@accepts_unbatched
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed (OH, OW) output over PyTorch's bins: rows
    floor(i*H/OH) .. ceil((i+1)*H/OH) - 1, columns likewise (equal blocks when OH divides H).

    Args: input (N, C, H, W); output_size: int or (OH, OW), None keeping that input size;
    1 is global average pooling.  Returns: (N, C, OH, OW).
    """
    oh, ow = _output_size("adaptive_avg_pool2d", input, output_size)
    H, W = input.shape[2:]
    if H % oh == 0 and W % ow == 0:
        return BlockMean2d((H // oh, W // ow))(input)
    return AdaptiveAvgPool2d((oh, ow))(input)


@accepts_unbatched
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed (OH, OW) output over the bins of ``adaptive_avg_pool2d``.

    Args: input (N, C, H, W); output_size: int or (OH, OW), None keeping that input size;
    return_indices: also return the maxima's positions (int64 h * W + w in the input).
    Returns: (N, C, OH, OW), or the pair (y, indices).
    """
    op = "adaptive_max_pool2d"
    oh, ow = _output_size(op, input, output_size)
    return_indices = check_bool(op, "return_indices", return_indices)
    H, W = input.shape[2:]
    if H % oh == 0 and W % ow == 0:
        k = (H // oh, W // ow)
        return MaxPool2d(k, k, (0, 0), (1, 1), False, return_indices)(input)
    return AdaptiveMaxPool2d((oh, ow), return_indices)(input)


@accepts_unbatched
def global_avg_pool2d(input):
    """Mean over all pixels of each channel: (N, C, H, W) -> (N, C, 1, 1) (or (C, H, W) ->
    (C, 1, 1))."""
    _output_size("global_avg_pool2d", input, 1)          # checks the input (non-empty H, W)
    return BlockMean2d(input.shape[2:])(input)
