"""2-D convolution: im2col + one GEMM per call (grouped: one batched GEMM), on CPU and GPU;
on the CPU, stride-1 convolutions of one group take the row path instead, and depthwise ones
(one input and output channel per group) are computed directly (``kernels.depthwise``).

Layout: ``kernels.im2col`` gives columns (C*KH*KW, N*OH*OW); ``W (C_out, C*KH*KW) @ col`` then
yields the output as (C_out, N*OH*OW), which is channel-major (CNHW) memory. The op returns it
as an NCHW *view* (``transpose(1, 0, 2, 3)``) rather than paying a pass to reorder it; the next
conv's im2col, batch norm, ReLU and pooling read that layout in place (NumPy and CuPy
elementwise ops keep it), and the gradients flowing back arrive in it too, so
``gy.transpose(1, 0, 2, 3).reshape(C_out, -1)`` is free in backward.

Row path (``functional/conv_rows.py``, host only): im2col's columns are a KH*KW-fold copy of
the input, and on the CPU writing and reading them back costs more than the GEMM; the row
columns unfold the width only, and one GEMM multiplies them by every kernel row. For
ResNet-20's 3x3 convolutions that made forward plus backward 1.4-1.7x faster
(``benchmarks/RESULTS.md``). The GPU keeps im2col: its kernel writes the columns at memory
speed, and one GEMM per conv is fewer launches.
"""
from __future__ import annotations

import numpy as np

from .. import backend, kernels
from .._checks import check_int
from ..autograd import Function
from ..kernels import depthwise, threads
from . import conv_rows as rows
from ._utils import accepts_unbatched, check_float, check_pair


def _conv_forward(x, W, b, stride, padding, dilation, groups, keep=False):
    """Raw-array convolution (N, C, H, W) * (O, C/G, KH, KW) -> (N, O, OH, OW) NCHW view.

    Also returns, when ``keep`` is asked and ``kernels.pool`` lent a buffer for them (owned by
    W), the columns for backward to give back (im2col's, or the row columns ``U`` of the row
    path); else None."""
    if _depthwise(x, W, stride, padding, dilation, groups):
        y = depthwise.forward(x, W, stride, padding, dilation)
        if b is not None:
            y += b[:, None, None]
        return y, None
    if rows.by_rows(x, W, stride, groups):
        y, U, lent = rows.rows_forward(x, W, b, padding, dilation, W if keep else None)
        return y, (U if lent else None)
    N, C, H, Wd = x.shape
    O, Cg, KH, KW = W.shape
    OH = kernels.out_size(H, KH, stride[0], padding[0], dilation[0])
    OW = kernels.out_size(Wd, KW, stride[1], padding[1], dilation[1])
    cols, lent = _columns(x, (KH, KW), stride, padding, dilation, W if keep else None)
    Y = _grouped_matmul(W.reshape(O, Cg * KH * KW), cols, groups)   # (O, N*OH*OW)
    Y = Y.reshape(O, N, OH, OW)
    if b is not None:
        Y += b[:, None, None, None]
    return Y.transpose(1, 0, 2, 3), (cols if lent else None)


def _columns(x, kernel_size, stride, padding, dilation, owner=None):
    """im2col of x as a (C*KH*KW, N*OH*OW) matrix, and whether it lives in a buffer that
    ``kernels.pool`` lent for ``owner`` (tried when one is given; the caller then holds it
    until it gives it back). Otherwise it lives in a scratch buffer that the next call
    overwrites. A 1x1 stride-1 conv needs no unfolding: its columns are a view of x."""
    N, C, H, W = x.shape
    if kernel_size == (1, 1) and stride == (1, 1) and padding == (0, 0):
        return x.transpose(1, 0, 2, 3).reshape(C, N * H * W), False   # free for CNHW memory
    OH = kernels.out_size(H, kernel_size[0], stride[0], padding[0], dilation[0])
    OW = kernels.out_size(W, kernel_size[1], stride[1], padding[1], dilation[1])
    shape = (C,) + kernel_size + (N, OH, OW)
    buf = None if owner is None else kernels.pool.take(shape, x.dtype, owner)
    lent = buf is not None
    if not lent:
        buf = kernels.scratch("conv_col", shape, x.dtype, x)
    col = kernels.im2col(x, kernel_size, stride, padding, dilation, out=buf)
    return col.reshape(C * kernel_size[0] * kernel_size[1], N * OH * OW), lent


def _depthwise(x, W, stride, padding, dilation, groups):
    """Whether this convolution takes the direct depthwise path (``kernels.depthwise``): on the
    host, one input and one output channel per group (of several), and output rows of at
    least ``depthwise.MIN_WIDTH`` columns. im2col's columns would be a KH*KW-fold copy of the
    input multiplied by GEMMs of one row each."""
    O, Cg, KH, KW = W.shape
    OW = kernels.out_size(x.shape[3], KW, stride[1], padding[1], dilation[1])
    return (groups > 1 and Cg == 1 and O == groups and OW >= depthwise.MIN_WIDTH
            and not backend._is_cupy_array(x))


def _grouped_matmul(A, B, groups):
    """A (M, K') @ B (G*K', L) blockwise: block g of the result (rows g*M/G ...) is
    A[g*M/G : (g+1)*M/G] @ B[g*K' : (g+1)*K']; one batched GEMM (a plain one for G = 1)."""
    if groups == 1:
        return kernels.matmul(A, B)
    M, L = A.shape[0], B.shape[1]
    return kernels.matmul(A.reshape(groups, M // groups, -1),
                          B.reshape(groups, -1, L)).reshape(M, L)


def _grouped_matmul_nt(A, B, groups):
    """A (G*M', L) @ B (G*K', L)^T blockwise: (G, M', K') (a plain (M', K') product for G = 1),
    the weight gradients' product summed over all positions L."""
    if groups == 1:
        return kernels.matmul(A, B.T)
    L = B.shape[1]
    return kernels.matmul(A.reshape(groups, -1, L), B.reshape(groups, -1, L).transpose(0, 2, 1))


def _flipped_transposed(W, groups):
    """Weight of the convolution that maps gy back to gx when stride is 1:
    Wt[g*Cg + c, o, i, j] = W[g*Og + o, c, KH-1-i, KW-1-j]   -> (C, O/G, KH, KW)."""
    O, Cg, KH, KW = W.shape
    Wg = W.reshape(groups, O // groups, Cg, KH, KW).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return Wg.reshape(groups * Cg, O // groups, KH, KW)


class Conv2d(Function):
    """y[n, o] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, c, oh*S + i*D, ...].

    Computed as Y = W_2d @ col with col = im2col(x) (C*KH*KW, N*OH*OW), per group.

    Gradient (gY = gy as (O, N*OH*OW); col is kept from forward when W needs a gradient, in
    a buffer lent by ``kernels.pool`` that backward gives back, so the buffers are recycled
    step after step instead of page-faulted afresh; recomputed from x when the pool is full):
        gb = sum of gY over N*OH*OW
        gW = gY @ col^T                                   (per group)
        gx = col2im(W_2d^T @ gY)                          (per group; on the host with a
                                                          stride, over a wider grid and
                                                          folded by phases: _input_grad_phases)
    With stride 1, gx is itself a convolution: gy padded by D*(K-1) - P, correlated (same
    dilation) with the kernel flipped in space and with its in/out channels swapped, which
    reuses the fast im2col + GEMM path instead of col2im's scattered adds.
    """

    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x, W, b=None):
        self.save_for_backward(x, W)
        y, self.cols = _conv_forward(x, W, b, self.stride, self.padding, self.dilation,
                                     self.groups, keep=self.needs_input_grad[1])
        return y

    def backward(self, gy):
        x, W = self.saved
        if _depthwise(x, W, self.stride, self.padding, self.dilation, self.groups):
            return self._backward_depthwise(x, W, gy)
        if rows.by_rows(x, W, self.stride, self.groups):
            return self._backward_rows(x, W, gy)
        s, p, d, G = self.stride, self.padding, self.dilation, self.groups
        N, C, H, Wd = x.shape
        O, Cg, KH, KW = W.shape
        gY = gy.transpose(1, 0, 2, 3).reshape(O, -1)                   # (O, N*OH*OW)
        needs = self.needs_input_grad
        gx = gW = gb = None
        if len(needs) > 2 and needs[2]:
            gb = gY.sum(axis=1)
        if needs[1]:
            kept, self.cols = self.cols, None          # a second backward recomputes them
            cols = kept if kept is not None else _columns(x, (KH, KW), s, p, d)[0]
            gW = _grouped_matmul_nt(gY, cols, G).reshape(W.shape)   # W's own layout
            if kept is not None:
                kernels.pool.give(cols)
        if needs[0]:
            pt = (d[0] * (KH - 1) - p[0], d[1] * (KW - 1) - p[1])
            if s == (1, 1) and min(pt) >= 0:
                gx = _conv_forward(gy, _flipped_transposed(W, G), None, s, pt, d, G)[0]
            else:
                gx = _input_grad_col2im(W, gy, x.shape, s, p, d, G)
        return (gx, gW) if len(needs) == 2 else (gx, gW, gb)

    def _backward_depthwise(self, x, W, gy):
        """Backward of the direct depthwise path: gx scatters each kernel offset's products
        back, gW sums them (``kernels.depthwise``)."""
        s, p, d = self.stride, self.padding, self.dilation
        needs = self.needs_input_grad
        gx = depthwise.input_grad(gy, W, x.shape, s, p, d) if needs[0] else None
        gW = depthwise.weight_grad(gy, x, W.shape, s, p, d) if needs[1] else None
        if len(needs) == 2:
            return gx, gW
        return gx, gW, (gy.sum(axis=(0, 2, 3)) if needs[2] else None)

    def _backward_rows(self, x, W, gy):
        """Backward of the row path (``rows.rows_forward``): gx is the row-path convolution of gy
        with the flipped, transposed kernel; gW takes one GEMM per kernel row against the row
        columns kept from forward (recomputed when the pool had no room). gy on U's grid
        positions is the unshifted plane of gy's own row columns when the padding is "same"
        (then both grids have the same rows per image and the same leading rows), else a
        zero-padded copy of gy."""
        p, d = self.padding, self.dilation
        O, C, KH, KW = W.shape
        needs = self.needs_input_grad
        gx = gW = gb = None
        if len(needs) > 2 and needs[2]:
            gb = gy.sum(axis=(0, 2, 3))
        pt = (d[0] * (KH - 1) - p[0], d[1] * (KW - 1) - p[1])
        G = None
        if needs[0]:
            if min(pt) >= 0:
                gx, G, _ = rows.rows_forward(gy, _flipped_transposed(W, 1), None, pt, d,
                                             name="conv_rows_gy")
            else:               # padding wider than the kernel's reach
                gx = _input_grad_col2im(W, gy, x.shape, (1, 1), p, d, 1)
        if needs[1]:
            kept, self.cols = self.cols, None
            U = kept if kept is not None else kernels.unfold_rows(
                x, (KH, KW), p, d, out=kernels.scratch("conv_rows_x", kernels.row_unfold_shape(
                    x.shape, (KH, KW), p, d), x.dtype, x))
            _, Hr, OW = kernels.row_geometry(x.shape, (KH, KW), p, d)
            _, L = rows.row_span(U, KH, d[0], OW)
            same = pt == p and p[1] % d[1] == 0
            if G is not None and same:     # gy's grid has x's: the same rows, lead and top
                start = p[0] * OW          # (lead + top) rows: past the lead to gy's first row
                gYw = G[p[1] // d[1]][:, start:start + L]
            else:
                gYw = rows.widen_rows(gy, Hr).reshape(O, -1)[:, :L]
            gW = rows.row_weight_grad(U, gYw, W.shape, d[0], OW)
            if kept is not None:
                kernels.pool.give(kept)
        return (gx, gW) if len(needs) == 2 else (gx, gW, gb)


def _input_grad_col2im(W, gy, x_shape, stride, padding, dilation, groups):
    """gx = col2im(W_2d^T @ gY) per group: the input gradient where it is not a convolution
    of gy (stride > 1, or padding wider than the kernel's reach)."""
    if stride != (1, 1) and not backend._is_cupy_array(gy):
        return _input_grad_phases(W, gy, x_shape, stride, padding, dilation, groups)
    O, Cg, KH, KW = W.shape
    N, OH, OW = gy.shape[0], gy.shape[2], gy.shape[3]
    gY = gy.transpose(1, 0, 2, 3).reshape(O, -1)                        # (O, N*OH*OW)
    gcol = _grouped_matmul(_group_t(W, groups), gY, groups)             # (C*KH*KW, ...)
    return kernels.col2im(gcol.reshape(x_shape[1], KH, KW, N, OH, OW), x_shape, stride,
                          padding, dilation)


def _input_grad_phases(W, gy, x_shape, stride, padding, dilation, groups):
    """The strided input gradient on the host, on the threads by images: gy widened with zeros
    to ``kernels.phase_grid``'s (Gh, Gw) grid, the GEMM W_2d^T @ gY over the grid's positions,
    then ``kernels.fold_phases`` (whole shifted rows added per phase, where col2im adds short
    blocks). The GEMM's extra columns (81 of every 64 at 3x3 stride 2 from 16x16, 289 of 256
    from 32x32, none for 1x1) cost less than the short blocks do."""
    O, Cg, KH, KW = W.shape
    N, C, H, Wd = x_shape
    OH, OW = gy.shape[2:]
    Gh, Gw = kernels.phase_grid(x_shape, (KH, KW), stride, padding, dilation)
    Wt = _group_t(W, groups).reshape(groups, Cg * KH * KW, O // groups)
    gx = np.empty((C, N, H, Wd), gy.dtype)

    def part(lo, hi):                                  # images lo..hi-1 on one thread
        n = hi - lo
        g = gy[lo:hi].transpose(1, 0, 2, 3)            # a view for channel-major gy
        if (Gh, Gw) != (OH, OW):                       # (a 1x1 kernel's grid is gy's own)
            wide = np.empty((O, n, Gh, Gw), gy.dtype)
            wide[:, :, OH:] = 0
            wide[:, :, :OH, OW:] = 0
            wide[:, :, :OH, :OW] = g
            g = wide
        gcol = np.empty((groups, Cg * KH * KW, n * Gh * Gw), gy.dtype)
        np.matmul(Wt, g.reshape(groups, O // groups, -1), out=gcol)
        kernels.fold_phases(gcol.reshape(C, KH, KW, -1), gx[:, lo:hi], stride, padding,
                            dilation, (Gh, Gw))

    threads.parallel(part, N, items=N * C * KH * KW * Gh * Gw)
    return gx.transpose(1, 0, 2, 3)


def _group_t(W, groups):
    """Per-group transpose of the 2-D weight: (G*Cg*KH*KW, O/G) stacked by group."""
    O = W.shape[0]
    Wg = W.reshape(groups, O // groups, -1).transpose(0, 2, 1)        # (G, Cg*KH*KW, O/G)
    return Wg.reshape(-1, O // groups)


# ---------------------------------------------------------------------------------------------
# argument checking

def check_conv_args(op, input, weight, layout, stride, padding, dilation, groups):
    """The checks conv2d and conv_transpose2d share: float 4-D input and weight (``layout``
    names the weight's axes) of one dtype, stride/padding/dilation pairs and the groups.
    Returns (stride, padding, dilation, groups) as pairs and an int."""
    check_float(op, "input", input)
    check_float(op, "weight", weight)
    if input.ndim != 4:
        raise ValueError(f"{op}: 'input' must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: 'weight' must be 4-D {layout}, got shape {weight.shape}")
    if input.dtype != weight.dtype:
        raise TypeError(f"{op}: input and weight must have the same dtype, got {input.dtype} "
                        f"and {weight.dtype}")
    s = check_pair(op, "stride", stride, 1)
    p = check_pair(op, "padding", padding, 0)
    d = check_pair(op, "dilation", dilation, 1)
    return s, p, d, check_int(op, "groups", groups, 1)


def check_conv_bias(op, bias, channels, input):
    """bias: a float (channels,) tensor of input's dtype."""
    check_float(op, "bias", bias)
    if bias.shape != (channels,):
        raise ValueError(f"{op}: 'bias' must have shape ({channels},), got {bias.shape}")
    if bias.dtype != input.dtype:
        raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {input.dtype}")


@accepts_unbatched
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of an NCHW batch.

    Args:
        input: (N, C_in, H, W).
        weight: (C_out, C_in / groups, KH, KW).
        bias: optional (C_out,).
        stride, padding, dilation: int or (h, w) pair; padding is zeros on both sides.
        groups: C_in and C_out split into this many independent blocks (C_in for depthwise).

    Returns:
        (N, C_out, OH, OW) with OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1 (same for W).
        The result is an NCHW view of channel-major memory (see the module docstring).
    """
    op = "conv2d"
    s, p, d, groups = check_conv_args(op, input, weight, "(C_out, C_in/groups, KH, KW)", stride,
                                      padding, dilation, groups)
    N, C, H, W = input.shape
    O, Cg, KH, KW = weight.shape
    if O < 1 or Cg < 1:
        raise ValueError(f"{op}: weight {weight.shape} must have at least one output and one "
                         "input channel")
    if C % groups:
        raise ValueError(f"{op}: input channels ({C}) must be divisible by groups ({groups})")
    if O % groups:
        raise ValueError(f"{op}: output channels ({O}, weight {weight.shape}) must be "
                         f"divisible by groups ({groups})")
    if C != Cg * groups:
        raise ValueError(f"{op}: input has {C} channels, weight expects {Cg * groups} "
                         f"(weight {weight.shape}, groups={groups})")
    if min(KH, KW) < 1:
        raise ValueError(f"{op}: kernel size must be positive, got weight {weight.shape}")
    for axis, size, k, pad, dil in (("height", H, KH, p[0], d[0]), ("width", W, KW, p[1], d[1])):
        if size + 2 * pad < dil * (k - 1) + 1:
            raise ValueError(
                f"{op}: kernel {axis} {k} (dilation {dil}, spanning {dil * (k - 1) + 1}) is "
                f"larger than the padded input {axis} {size + 2 * pad} (input {input.shape}, "
                f"padding {pad})")
    if bias is None:
        return Conv2d(s, p, d, groups)(input, weight)
    check_conv_bias(op, bias, O, input)
    return Conv2d(s, p, d, groups)(input, weight, bias)
