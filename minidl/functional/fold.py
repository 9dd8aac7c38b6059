"""Moving spatial neighbourhoods into channels and back: unfold (im2col exposed), its adjoint
fold (col2im), and pixel_shuffle / pixel_unshuffle (pure reshapes and transposes).

unfold and fold reuse the convolution's kernels (``kernels.im2col`` / ``kernels.col2im``, on
the CPU and the GPU), whose columns are channel-major, (C*KH*KW, N*OH*OW); PyTorch's layout
(N, C*KH*KW, L), L = OH*OW, is a transposed view of them:

    unfold(x)[n, (c, i, j), oh*OW + ow] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]

fold is the adjoint of unfold (the sum over every block entry that lands on a pixel), so each
one's backward is the other.
"""
from __future__ import annotations

from .. import kernels
from .._checks import check_int
from ..autograd import Function
from ._utils import check_float, check_pair, check_tensor
from .shape import permute, reshape


class Unfold(Function):
    """y = im2col(x) as (N, C*KH*KW, L).
    Gradient: gx = col2im(gy) (fold: every column entry added back onto its pixel)."""

    def __init__(self, kernel_size, dilation, padding, stride):
        self.args = (kernel_size, stride, padding, dilation)

    def forward(self, x):
        self.in_shape = x.shape
        col = kernels.im2col(x, *self.args)                   # (C, KH, KW, N, OH, OW)
        C, KH, KW, N, OH, OW = col.shape
        return col.reshape(C * KH * KW, N, OH * OW).transpose(1, 0, 2)   # (N, C*KH*KW, L)

    def backward(self, gy):
        return _fold(gy, self.in_shape, *self.args)


class Fold(Function):
    """y = col2im(x): y[n, c, h, w] = sum of x[n, (c, i, j), (oh, ow)] over the block entries
    with oh*SH + i*DH - PH = h and ow*SW + j*DW - PW = w.
    Gradient: gx = im2col(gy) (unfold)."""

    def __init__(self, out_shape, kernel_size, dilation, padding, stride):
        self.out_shape = out_shape
        self.args = (kernel_size, stride, padding, dilation)

    def forward(self, x):
        return _fold(x, self.out_shape, *self.args)

    def backward(self, gy):
        col = kernels.im2col(gy, *self.args)
        C, KH, KW, N, OH, OW = col.shape
        return col.reshape(C * KH * KW, N, OH * OW).transpose(1, 0, 2)


def _fold(x, out_shape, kernel_size, stride, padding, dilation):
    """col2im of x (N, C*KH*KW, L) into an (N, C, H, W) image."""
    N, C, H, W = out_shape
    KH, KW = kernel_size
    OH = kernels.out_size(H, KH, stride[0], padding[0], dilation[0])
    OW = kernels.out_size(W, KW, stride[1], padding[1], dilation[1])
    col = x.transpose(1, 0, 2).reshape(C, KH, KW, N, OH, OW)
    return kernels.col2im(col, out_shape, stride, padding, dilation)


def _block_args(op, kernel_size, dilation, padding, stride):
    return (check_pair(op, "kernel_size", kernel_size, 1), check_pair(op, "dilation", dilation, 1),
            check_pair(op, "padding", padding, 0), check_pair(op, "stride", stride, 1))


def _blocks(op, size, k, d, p, s):
    """The number of blocks along one dim (H and OH, or W and OW) and the error if none fits."""
    n = kernels.out_size(size, k, s, p, d)
    if n < 1:
        raise ValueError(f"{op}: no block fits: a kernel of {k} (dilation {d}) does not fit "
                         f"a size of {size} padded by {p} on each side")
    return n


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding blocks: (N, C, H, W) -> (N, C*KH*KW, L) (unbatched (C, H, W) ->
    (C*KH*KW, L)), L = OH*OW blocks; row (c, i, j) of block (oh, ow) holds
    input[n, c, oh*SH + i*DH - PH, ow*SW + j*DW - PW] (0 in the padding)."""
    check_float("unfold", "input", input)
    if input.ndim not in (3, 4):
        raise ValueError(f"unfold: 'input' must be 4-D (N, C, H, W) or 3-D (C, H, W), got "
                         f"shape {input.shape}")
    k, d, p, s = _block_args("unfold", kernel_size, dilation, padding, stride)
    x = input if input.ndim == 4 else reshape(input, (1,) + input.shape)
    for a in (0, 1):
        _blocks("unfold", x.shape[2 + a], k[a], d[a], p[a], s[a])
    y = Unfold(k, d, p, s)(x)
    return y if input.ndim == 4 else reshape(y, y.shape[1:])


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding blocks into an image, summing overlaps (the adjoint of unfold):
    (N, C*KH*KW, L) -> (N, C, H, W) with (H, W) = ``output_size`` (unbatched (C*KH*KW, L) ->
    (C, H, W)); L must be the number of blocks unfold would take from that size."""
    check_float("fold", "input", input)
    if input.ndim not in (2, 3):
        raise ValueError(f"fold: 'input' must be 3-D (N, C*KH*KW, L) or 2-D (C*KH*KW, L), "
                         f"got shape {input.shape}")
    H, W = check_pair("fold", "output_size", output_size, 1)
    k, d, p, s = _block_args("fold", kernel_size, dilation, padding, stride)
    x = input if input.ndim == 3 else reshape(input, (1,) + input.shape)
    N, CKK, L = x.shape
    if CKK % (k[0] * k[1]):
        raise ValueError(f"fold: dim -2 of 'input' ({CKK}) must be divisible by the kernel's "
                         f"size {k[0]}*{k[1]} = {k[0] * k[1]} (input shape {input.shape})")
    OH = _blocks("fold", H, k[0], d[0], p[0], s[0])
    OW = _blocks("fold", W, k[1], d[1], p[1], s[1])
    if L != OH * OW:
        raise ValueError(f"fold: 'input' has {L} blocks (dim -1), but output_size {(H, W)} "
                         f"with kernel_size {k}, dilation {d}, padding {p}, stride {s} "
                         f"takes {OH}*{OW} = {OH * OW}")
    y = Fold((N, CKK // (k[0] * k[1]), H, W), k, d, p, s)(x)
    return y if input.ndim == 3 else reshape(y, y.shape[1:])


def pixel_shuffle(input, upscale_factor):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r):
    out[..., c, h*r + a, w*r + b] = input[..., c*r*r + a*r + b, h, w]."""
    check_tensor("pixel_shuffle", "input", input)
    r = check_int("pixel_shuffle", "upscale_factor", upscale_factor, 1)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ValueError(f"pixel_shuffle: 'input' must be (*, C*r*r, H, W) with the channels "
                         f"divisible by r*r = {r * r}, got shape {input.shape}")
    *lead, C, H, W = input.shape
    b = len(lead)
    x = reshape(input, (*lead, C // (r * r), r, r, H, W))
    x = permute(x, (*range(b), b, b + 3, b + 1, b + 4, b + 2))   # (*, C, H, r, W, r)
    return reshape(x, (*lead, C // (r * r), H * r, W * r))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W), the inverse of pixel_shuffle:
    out[..., c*r*r + a*r + b, h, w] = input[..., c, h*r + a, w*r + b]."""
    check_tensor("pixel_unshuffle", "input", input)
    r = check_int("pixel_unshuffle", "downscale_factor", downscale_factor, 1)
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise ValueError(f"pixel_unshuffle: 'input' must be (*, C, H, W) with H and W "
                         f"divisible by r = {r}, got shape {input.shape}")
    *lead, C, H, W = input.shape
    b = len(lead)
    x = reshape(input, (*lead, C, H // r, r, W // r, r))
    x = permute(x, (*range(b), b, b + 2, b + 4, b + 1, b + 3))   # (*, C, r, r, H, W)
    return reshape(x, (*lead, C * r * r, H // r, W // r))
