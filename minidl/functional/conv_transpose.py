"""Transposed 2-D convolution ("deconvolution"): the adjoint of ``conv2d`` in its input, built
from conv2d's own pieces (im2col/col2im, the grouped GEMM, the flipped kernel) on CPU and GPU.
"""
from __future__ import annotations

from .. import kernels
from ..autograd import Function
from ._utils import accepts_unbatched, check_pair
from .conv import (_columns, _conv_forward, _flipped_transposed, _grouped_matmul,
                   _grouped_matmul_nt, _input_grad_col2im, check_conv_args, check_conv_bias)


def check_output_padding(op, output_padding, stride, dilation):
    """output_padding as a pair, each smaller than the stride or the dilation of its axis
    (PyTorch's rule: more would add rows no input position reaches)."""
    opad = check_pair(op, "output_padding", output_padding, 0)
    for a in range(2):
        if opad[a] >= stride[a] and opad[a] >= dilation[a]:
            raise ValueError(f"{op}: 'output_padding' must be smaller than either stride or "
                             f"dilation, got output_padding {opad}, stride {stride}, "
                             f"dilation {dilation}")
    return opad


def conv_transpose_out_size(size, kernel, stride, padding, output_padding, dilation):
    """Output length of a transposed convolution (PyTorch's rule):
    (size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


class ConvTranspose2d(Function):
    """The adjoint of conv2d in its input: y = conv2d's input gradient for "upstream" x.

    With W (C_in, C_out/G, KH, KW) read as a conv2d weight that maps C_out channels to C_in,
    and X = x as (C_in, N*H*W) per group:
        y = col2im(W_2d^T @ X)                              (per group; + b[o])
    i.e. y[n, o, h*S + i*D - P, w*S + j*D - P] += W[c, o, i, j] * x[n, c, h, w]; positions that
    fall into the padding are dropped, and output_padding adds rows/columns at the far end.
    With stride 1, no output_padding and padding <= D*(K-1), y is an ordinary convolution of x
    padded by D*(K-1) - P with the kernel flipped in space and its channels swapped (the same
    identity conv2d's backward uses), which takes conv2d's faster paths.

    Gradient (gY's columns: cols = im2col(gy) with conv2d's stride, padding and dilation, as a
    (C_out*KH*KW, N*H*W) matrix, cropped to x's positions when output_padding >= stride makes
    the unfolded grid larger than x):
        gx = W_2d @ cols          (per group: conv2d of gy with W)
        gW = X @ cols^T           (per group)
        gb = sum of gy over N, OH, OW
    """

    def __init__(self, stride, padding, output_padding, dilation, groups):
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding, self.groups = output_padding, groups

    def forward(self, x, W, b=None):
        self.save_for_backward(x, W)
        s, p, op, d, G = self.stride, self.padding, self.output_padding, self.dilation, self.groups
        N, C, H, Wd = x.shape
        _, Og, KH, KW = W.shape
        OH = conv_transpose_out_size(H, KH, s[0], p[0], op[0], d[0])
        OW = conv_transpose_out_size(Wd, KW, s[1], p[1], op[1], d[1])
        pt = (d[0] * (KH - 1) - p[0], d[1] * (KW - 1) - p[1])
        if s == (1, 1) and op == (0, 0) and min(pt) >= 0:
            return _conv_forward(x, _flipped_transposed(W, G), b, s, pt, d, G)[0]
        y = _input_grad_col2im(W, x, (N, Og * G, OH, OW), s, p, d, G)
        if b is not None:
            y += b[:, None, None]
        return y

    def backward(self, gy):
        x, W = self.saved
        s, p, d, G = self.stride, self.padding, self.dilation, self.groups
        N, C, H, Wd = x.shape
        _, Og, KH, KW = W.shape
        needs = self.needs_input_grad
        gx = gW = gb = None
        if len(needs) > 2 and needs[2]:
            gb = gy.sum(axis=(0, 2, 3))
        if needs[0] or needs[1]:
            cols = _columns(gy, (KH, KW), s, p, d)[0]            # (C_out*KH*KW, N*H2*W2)
            H2 = kernels.out_size(gy.shape[2], KH, s[0], p[0], d[0])
            W2 = kernels.out_size(gy.shape[3], KW, s[1], p[1], d[1])
            if (H2, W2) != (H, Wd):                  # output_padding >= stride: crop the grid
                cols = cols.reshape(-1, N, H2, W2)[:, :, :H, :Wd].reshape(-1, N * H * Wd)
            if needs[0]:
                gX = _grouped_matmul(W.reshape(C, Og * KH * KW), cols, G)   # (C, N*H*W)
                gx = gX.reshape(C, N, H, Wd).transpose(1, 0, 2, 3)
            if needs[1]:
                X = x.transpose(1, 0, 2, 3).reshape(C, -1)                  # (C, N*H*W)
                gW = _grouped_matmul_nt(X, cols, G).reshape(W.shape)
        return (gx, gW) if len(needs) == 2 else (gx, gW, gb)


@accepts_unbatched
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution ("deconvolution") of an NCHW batch: the gradient of conv2d
    with respect to its input, as in PyTorch.

    Args:
        input: (N, C_in, H, W).
        weight: (C_in, C_out / groups, KH, KW) (conv2d's layout with in and out swapped).
        bias: optional (C_out,).
        stride, padding, dilation: int or (h, w) pair, as of the conv2d this inverts.
        output_padding: int or pair, extra rows/columns at the bottom/right; each must be
            smaller than the stride or the dilation of its axis.
        groups: C_in and C_out split into this many independent blocks.

    Returns:
        (N, C_out, OH, OW), OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1 (same for W).
    """
    op = "conv_transpose2d"
    s, p, d, groups = check_conv_args(op, input, weight, "(C_in, C_out/groups, KH, KW)", stride,
                                      padding, dilation, groups)
    opad = check_output_padding(op, output_padding, s, d)
    N, C, H, W = input.shape
    Ci, Og, KH, KW = weight.shape
    if Ci < 1 or Og < 1 or min(KH, KW) < 1:
        raise ValueError(f"{op}: weight {weight.shape} must have positive sizes")
    if C % groups:
        raise ValueError(f"{op}: input channels ({C}) must be divisible by groups ({groups})")
    if C != Ci:
        raise ValueError(f"{op}: input has {C} channels, weight expects {Ci} "
                         f"(weight {weight.shape}, groups={groups})")
    out = tuple(conv_transpose_out_size(n, k, s[a], p[a], opad[a], d[a])
                for a, (n, k) in enumerate(((H, KH), (W, KW))))
    if min(out) < 1 or min(H, W) < 1:
        raise ValueError(f"{op}: output size {out} is not positive (input {input.shape}, "
                         f"weight {weight.shape}, stride {s}, padding {p}, output_padding "
                         f"{opad}, dilation {d})")
    if bias is None:
        return ConvTranspose2d(s, p, opad, d, groups)(input, weight)
    check_conv_bias(op, bias, Og * groups, input)
    return ConvTranspose2d(s, p, opad, d, groups)(input, weight, bias)
