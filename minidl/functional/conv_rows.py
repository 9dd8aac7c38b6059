"""The row path of a stride-1 convolution on the host (``conv2d`` takes it for one group and a
kernel larger than 1x1, see ``by_rows``): im2col's columns are a KH*KW-fold copy of the
input, and on the CPU writing and reading them back costs more than the GEMM. The row columns
of ``kernels.unfold_rows`` are only a KW-fold copy (unfolded along the width, kept whole along
the height, each image's top padding rows shared with the zero rows before it); one GEMM
multiplies them by every kernel row, and each kernel row's product is summed in shifted by its
row offset (``rows_forward``). The weight gradient takes one GEMM per kernel row against the
same row columns (``row_weight_grad``); ``Conv2d``'s backward puts the pieces together.
"""
from __future__ import annotations

import numpy as np

from .. import backend, kernels
from ..kernels import threads


def by_rows(x, W, stride, groups):
    """Whether this convolution takes the row path: on the host, stride 1, one group, a kernel
    larger than 1x1 (whose columns are x itself), and less memory traffic than im2col's (per
    output position: row columns KW*C written, products KH*O written and read back, against
    im2col's KH*KW*C columns written and read and O outputs; a 3-channel stem is cheaper by
    im2col)."""
    O, C, KH, KW = W.shape
    return (stride == (1, 1) and groups == 1 and KH * KW > 1
            and KW * C + 2 * KH * O < 2 * KH * KW * C + O
            and not backend._is_cupy_array(x))


def rows_forward(x, W, b, padding, dilation, owner=None, name="conv_rows_x"):
    """The row path of a stride-1 convolution on the host, over the row columns
    ``U = kernels.unfold_rows(x)`` (a KW-fold copy of x, where im2col makes a KH*KW-fold one).
    One GEMM multiplies them by all kernel rows at once; each kernel row's product is then read
    shifted by its row offset, and the shifted products are summed into the output:

        Z[i, o, q] = sum_(j, c) W[o, c, i, j] U[j, c, q]           (q: U's flat positions)
        y[n, o, oh, ow] = b[o] + sum_i Z[i, o, (n*Hr + oh + i*DH)*OW + ow]

    (``kernels.row_geometry``: Hr grid rows per image, after ``lead`` zero rows.) Each thread
    multiplies its images' part of U into a Z of its own, which starts with the products of
    ``lead`` zero rows (the rows before its first image, read by the first kernel rows).
    Returns the NCHW view of the (O, N, OH, OW) output, U, and whether ``kernels.pool`` lent U
    for ``owner`` (else it lives in the scratch buffer ``name``)."""
    N = x.shape[0]
    O, C, KH, KW = W.shape
    shape = kernels.row_unfold_shape(x.shape, (KH, KW), padding, dilation)
    lead, Hr, OW = kernels.row_geometry(x.shape, (KH, KW), padding, dilation)
    dh = dilation[0]
    OH = lead + Hr - dh * (KH - 1)
    U = None if owner is None else kernels.pool.take(shape, x.dtype, owner)
    lent = U is not None
    if not lent:
        U = kernels.scratch(name, shape, x.dtype, x)
    Wrows = np.ascontiguousarray(W.transpose(2, 0, 3, 1).reshape(KH * O, KW * C))  # (i,o),(j,c)
    Y = np.empty((O, N, OH, OW), x.dtype)
    extra = [] if b is None else [b[:, None, None, None]]

    m = lead * OW
    edge = np.matmul(Wrows, np.zeros((KW * C, m), x.dtype))   # the products of the lead rows

    def part(lo, hi):                      # images lo..hi-1, on one thread (kernels.threads)
        n = hi - lo
        # its images and the lead rows before them, which are the previous part's last rows:
        # unfold_rows zeroes them (the previous part too writes only zeros there in the end,
        # but not at every moment), and this part never reads them, using ``edge`` instead
        Up = U[:, :, lo * Hr * OW:m + hi * Hr * OW]
        kernels.unfold_rows(x[lo:hi], (KH, KW), padding, dilation, out=Up)
        Z = kernels.scratch("conv_rows_z", (KH, O, Up.shape[2]), x.dtype, x)   # this thread's
        threads.view(Z, (KH * O, -1))[:, :m] = edge
        np.matmul(Wrows, threads.view(Up[:, :, m:], (KW * C, -1)),
                  out=threads.view(Z[:, :, m:], (KH * O, -1)))
        step = Z.itemsize
        shifted = [np.lib.stride_tricks.as_strided(
            Z[i, :, i * dh * OW:], (O, n, OH, OW), (Z.strides[1], Hr * OW * step, OW * step,
                                                    step), writeable=False)
            for i in range(KH)]
        Yp = Y[:, lo:hi]
        if KH == 1:
            Yp[...] = shifted[0]
        else:
            np.add(shifted[0], shifted[1], out=Yp)
        for more in shifted[2:] + extra:
            Yp += more

    threads.parallel(part, N, items=Y.size * KH)
    return Y.transpose(1, 0, 2, 3), U, lent


def row_span(U, KH, dh, OW):
    """(KW*C, lead*OW + N*Hr*OW) view of the row columns, and L: the positions every kernel
    row's shifted view covers (all valid outputs; the tail past them is the last image's
    cropped rows)."""
    U2 = U.reshape(U.shape[0] * U.shape[1], -1)
    return U2, U2.shape[1] - dh * (KH - 1) * OW


def row_weight_grad(U, gYw, W_shape, dh, OW):
    """gW[o, c, i, j] = sum_p gYw[o, p] * U2[(j, c), p + i*DH*OW], one GEMM per kernel row;
    gYw (O, L) is gy on the grid's positions (p = (n*Hr + oh)*OW + ow), zero on the cropped
    ones. With threads (``kernels.threads``) each takes a range of positions, and their
    partial sums are added in a fixed order."""
    O, C, KH, KW = W_shape
    U2, L = row_span(U, KH, dh, OW)

    def part(lo, hi):
        R = np.empty((KH, KW * C, O), U.dtype)
        for i in range(KH):
            s = i * dh * OW
            np.matmul(U2[:, s + lo:s + hi], gYw[:, lo:hi].T, out=R[i])
        return R

    R = threads.summed(part, L, items=L * (KW * C + O))
    return np.ascontiguousarray(R.reshape(KH, KW, C, O).transpose(3, 2, 0, 1))


def widen_rows(gy, height):
    """gy (N, O, OH, OW) -> (O, N, height, OW) with zeros in the rows past OH."""
    N, O, OH, OW = gy.shape
    g = kernels.scratch("conv_gy", (O, N, height, OW), gy.dtype, gy)
    g[:, :, OH:] = 0
    g[:, :, :OH] = gy.transpose(1, 0, 2, 3)
    return g
