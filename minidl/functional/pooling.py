"""2-D pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d, global_avg_pool2d.

Windows are visited with one strided slice per kernel offset (a loop over KH*KW offsets, never
over pixels), on the channel-major view ``x.transpose(1, 0, 2, 3)`` that conv2d produces, so
the usual CNHW memory is read in place; results are returned as NCHW views of CNHW memory too.
"""
from __future__ import annotations

import numpy as np

from .. import backend, kernels
from ..autograd import Function
from ._utils import check_float, check_pair


def _window(i, j, stride, out_hw):
    """Slices picking, for every output pixel, the input at kernel offset (i, j)."""
    (sh, sw), (OH, OW) = stride, out_hw
    return (slice(None), slice(None), slice(i, i + sh * (OH - 1) + 1, sh),
            slice(j, j + sw * (OW - 1) + 1, sw))


def _overlapping(kernel_size, stride):
    """Whether neighbouring windows share input pixels (then gradients must be added)."""
    return stride[0] < kernel_size[0] or stride[1] < kernel_size[1]


def _padded(x, padding, fill):
    """x (N, C, H, W) -> (C, N, H + 2*PH, W + 2*PW) channel-major copy with constant borders."""
    xp = backend.xp_of(x)
    N, C, H, W = x.shape
    ph, pw = padding
    xt = x.transpose(1, 0, 2, 3)
    if ph == 0 and pw == 0:
        return xt
    out = xp.full((C, N, H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = xt
    return out


def _unpad(g, x_shape, padding):
    """Crop the channel-major padded gradient back to an (N, C, H, W) view."""
    N, C, H, W = x_shape
    ph, pw = padding
    return g[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max over the window of xpad (padding is -inf, never chosen).

    Gradient: each window's gy goes to one element, its first maximum in row-major window
    order (ties are broken the same way every time): gx[argmax] += gy. The argmax is not
    stored: backward finds, offset by offset, the window entries equal to y that no earlier
    offset has claimed (elementwise max and compares are several times faster than masked
    copies that track an index in forward). There the padding is NaN, which equals nothing,
    so a window of -inf inputs passes its gradient to its first input, not to the padding.
    A window whose maximum is NaN (a NaN input) passes no gradient; PyTorch sends it to the
    NaN.
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        xp = backend.xp_of(x)
        (KH, KW), s, p = self.kernel_size, self.stride, self.padding
        OH = kernels.out_size(x.shape[2], KH, s[0], p[0], 1)
        OW = kernels.out_size(x.shape[3], KW, s[1], p[1], 1)
        xpad = _padded(x, p, -np.inf)                                    # (C, N, Hp, Wp)
        y = xpad[_window(0, 0, s, (OH, OW))].copy()                      # (C, N, OH, OW)
        for k in range(1, KH * KW):
            xp.maximum(y, xpad[_window(k // KW, k % KW, s, (OH, OW))], out=y)
        self.out_hw = (OH, OW)
        self.save_for_backward(x, y)
        return y.transpose(1, 0, 2, 3)

    def backward(self, gy):
        x, y = self.saved
        xp = backend.xp_of(gy)
        (KH, KW), s, (ph, pw) = self.kernel_size, self.stride, self.padding
        N, C, H, W = x.shape
        xpad = _padded(x, self.padding, np.nan)            # never equal to y (see docstring)
        gt = gy.transpose(1, 0, 2, 3)                                    # (C, N, OH, OW)
        gx = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), gy.dtype)
        claimed = None
        for k in range(KH * KW):
            win = _window(k // KW, k % KW, s, self.out_hw)
            hit = xpad[win] == y
            if claimed is None:
                claimed = hit
            else:
                hit &= ~claimed
                if k < KH * KW - 1:
                    claimed |= hit
            if _overlapping(self.kernel_size, s):
                gx[win] += gt * hit
            else:                   # windows are disjoint: plain (faster) strided stores
                gx[win] = gt * hit
        return _unpad(gx, x.shape, self.padding)


class AvgPool2d(Function):
    """y = (sum of the window of zero-padded x) / (KH*KW)   (count_include_pad=True).

    Gradient: gx[window pixel] += gy / (KH*KW) for every window that covers it.
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        (KH, KW), s, p = self.kernel_size, self.stride, self.padding
        OH = kernels.out_size(x.shape[2], KH, s[0], p[0], 1)
        OW = kernels.out_size(x.shape[3], KW, s[1], p[1], 1)
        xpad = _padded(x, p, 0)
        y = xpad[_window(0, 0, s, (OH, OW))].copy()
        for k in range(1, KH * KW):
            y += xpad[_window(k // KW, k % KW, s, (OH, OW))]
        y *= 1.0 / (KH * KW)
        self.x_shape, self.out_hw = x.shape, (OH, OW)
        return y.transpose(1, 0, 2, 3)

    def backward(self, gy):
        xp = backend.xp_of(gy)
        (KH, KW), s, (ph, pw) = self.kernel_size, self.stride, self.padding
        N, C, H, W = self.x_shape
        g = gy.transpose(1, 0, 2, 3) * (1.0 / (KH * KW))                 # (C, N, OH, OW)
        gx = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), gy.dtype)
        for k in range(KH * KW):
            if _overlapping(self.kernel_size, s):
                gx[_window(k // KW, k % KW, s, self.out_hw)] += g
            else:
                gx[_window(k // KW, k % KW, s, self.out_hw)] = g
        return _unpad(gx, self.x_shape, self.padding)


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


# ---------------------------------------------------------------------------------------------
# public wrappers



def _check_input(op, x):
    check_float(op, "input", x)
    if x.ndim != 4:
        raise ValueError(f"{op}: 'input' must be 4-D (N, C, H, W), got shape {x.shape}")


def _window_args(op, input, kernel_size, stride, padding):
    _check_input(op, input)
    k = check_pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else check_pair(op, "stride", stride, 1)
    p = check_pair(op, "padding", padding, 0)
    for axis, size, kk, pp in (("height", input.shape[2], k[0], p[0]),
                               ("width", input.shape[3], k[1], p[1])):
        if 2 * pp > kk:
            raise ValueError(f"{op}: padding {pp} must be at most half the kernel {axis} {kk}")
        if kk > size + 2 * pp:
            raise ValueError(f"{op}: kernel {axis} {kk} is larger than the padded input "
                             f"{axis} {size + 2 * pp} (input {input.shape}, padding {pp})")
    return k, s, p


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """Max over KH x KW windows (stride defaults to the kernel size; padding is -inf).

    Args: input (N, C, H, W); kernel_size, stride, padding: int or (h, w).
    Returns: (N, C, OH, OW), OH = floor((H + 2*PH - KH) / SH) + 1.
    """
    k, s, p = _window_args("max_pool2d", input, kernel_size, stride, padding)
    return MaxPool2d(k, s, p)(input)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """Mean over KH x KW windows, zero padding counted in the divisor (PyTorch's default
    count_include_pad=True). Shapes as in ``max_pool2d``."""
    k, s, p = _window_args("avg_pool2d", input, kernel_size, stride, padding)
    return AvgPool2d(k, s, p)(input)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed (OH, OW) output; each output size must divide the input size
    (so every bin has the same size H/OH x W/OW). ``output_size`` 1 is global average pooling.
    """
    op = "adaptive_avg_pool2d"
    _check_input(op, input)
    oh, ow = check_pair(op, "output_size", output_size, 1)
    H, W = input.shape[2:]
    if H % oh or W % ow:
        raise ValueError(f"{op}: output size ({oh}, {ow}) must divide the input size ({H}, {W}) "
                         f"(only equal-size bins are supported), got input {input.shape}")
    return BlockMean2d((H // oh, W // ow))(input)


def global_avg_pool2d(input):
    """Mean over all pixels of each channel: (N, C, H, W) -> (N, C, 1, 1)."""
    _check_input("global_avg_pool2d", input)
    return BlockMean2d(input.shape[2:])(input)
