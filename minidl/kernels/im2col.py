"""im2col / col2im on raw arrays: the readable reference, written once against ``xp``.

Convolution becomes one matrix multiply once every receptive field is unfolded into a column.
The column buffer is laid out ``(C, KH, KW, N, OH, OW)`` (C-contiguous), so that

- ``col.reshape(C*KH*KW, N*OH*OW)`` is free and the GEMM ``W (C_out, C*KH*KW) @ col`` reads it
  as a plain 2-D matrix (no hidden copy), with groups a free ``(G, C/G*KH*KW, N*OH*OW)`` view;
- the GEMM result ``(C_out, N*OH*OW)`` is the output in channel-major (CNHW) memory, returned
  to callers as an NCHW view (``transpose(1, 0, 2, 3)``) without a copy;
- filling it takes one strided copy per kernel offset, each copying whole output rows.

col2im is the adjoint: it adds each kernel offset's slice back into a zeroed (padded) input
with one strided ``+=`` per offset (no scatter-add). Both run on NumPy and CuPy arrays; on the
GPU ``minidl.kernels`` routes to the fused kernels of ``kernels/cuda.py`` instead.

Index map (all sizes by PyTorch's floor rule, ``out_size``):
    col[c, i, j, n, oh, ow] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]
where xpad is x zero-padded by (PH, PW) on each side.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import backend
from . import threads


def out_size(size, kernel, stride, padding, dilation):
    """Output length of a convolution or pooling window (PyTorch's floor rule)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------------------------
# scratch buffers (host only)

_local = threading.local()


def scratch(name, shape, dtype, like):
    """An uninitialized buffer for temporaries that never escape the caller.

    On the host, one flat buffer per (thread, name, dtype) is kept and grown as needed, so the
    large im2col buffers of a training step are not page-faulted in afresh on every call
    (reallocating them cost about as much as filling them). Callers must finish with a
    buffer before asking for the same ``name`` again. On the GPU, CuPy's memory pool already
    recycles allocations, so this is a plain ``empty``.
    """
    xp = backend.xp_of(like)
    dtype = np.dtype(dtype)
    if xp is not np:
        return xp.empty(shape, dtype)
    n = 1
    for s in shape:
        n *= s
    pool = getattr(_local, "buffers", None)
    if pool is None:
        pool = _local.buffers = {}
    buf = pool.get((name, dtype))
    if buf is None or buf.size < n:
        buf = pool[(name, dtype)] = np.empty(max(n, 1), dtype)
    return buf[:n].reshape(shape)


def release_scratch():
    """Drop this thread's host scratch buffers (their memory returns to the system). minidl's
    kernel threads (``kernels.threads``) keep their own, small ones (padded image slices)."""
    _local.buffers = {}


# ---------------------------------------------------------------------------------------------

def _pad_channel_major(x, padding, buffer_name):
    """x (N, C, H, W) -> xpad (C, N, H + 2*PH, W + 2*PW) with zero borders: a scratch buffer,
    or a plain view of x when there is nothing to pad."""
    N, C, H, W = x.shape
    ph, pw = padding
    xt = x.transpose(1, 0, 2, 3)                                     # (C, N, H, W) view
    if ph == 0 and pw == 0:
        return xt
    xpad = scratch(buffer_name, (C, N, H + 2 * ph, W + 2 * pw), x.dtype, x)
    if ph:
        xpad[:, :, :ph] = 0
        xpad[:, :, ph + H:] = 0
    if pw:
        xpad[:, :, ph:ph + H, :pw] = 0
        xpad[:, :, ph:ph + H, pw + W:] = 0
    xpad[:, :, ph:ph + H, pw:pw + W] = xt
    return xpad


def im2col(x, kernel_size, stride, padding, dilation, out=None):
    """Unfold every receptive field of ``x`` into a column.

    Args:
        x: (N, C, H, W) array, any strides.
        kernel_size, stride, padding, dilation: (h, w) int pairs.
        out: optional C-contiguous (C, KH, KW, N, OH, OW) buffer to fill, or a slice of one
            along N.

    Returns:
        col: (C, KH, KW, N, OH, OW), C-contiguous, ``col[c, i, j, n, oh, ow] =
        xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]``.
    """
    xp = backend.xp_of(x)
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    OH = out_size(H, KH, sh, padding[0], dh)
    OW = out_size(W, KW, sw, padding[1], dw)
    col = xp.empty((C, KH, KW, N, OH, OW), x.dtype) if out is None else out

    def part(lo, hi):                      # images lo..hi-1 (on one host thread)
        xpad = _pad_channel_major(x[lo:hi], padding, "im2col_pad")      # (C, n, Hp, Wp)
        for i in range(KH):
            for j in range(KW):
                h0, w0 = i * dh, j * dw
                col[:, i, j, lo:hi] = xpad[:, :, h0:h0 + sh * (OH - 1) + 1:sh,
                                           w0:w0 + sw * (OW - 1) + 1:sw]

    threads.parallel_if_host(xp, part, N, items=col.size)
    return col


def row_geometry(x_shape, kernel_size, padding, dilation):
    """(lead, Hr, OW) of ``unfold_rows``: the leading padding rows each image leaves out (the
    top padding PH when PH <= DH*(KH-1), else 0), the grid rows per image Hr = H + 2*PH - lead,
    and OW, the stride-1 output width."""
    N, C, H, W = x_shape
    (KH, KW), (ph, pw), (dh, dw) = kernel_size, padding, dilation
    lead = ph if ph <= dh * (KH - 1) else 0
    return lead, H + 2 * ph - lead, W + 2 * pw - dw * (KW - 1)


def row_unfold_shape(x_shape, kernel_size, padding, dilation):
    """(KW, C, lead*OW + N*Hr*OW): the shape of ``unfold_rows``'s buffer (``row_geometry``)."""
    lead, Hr, OW = row_geometry(x_shape, kernel_size, padding, dilation)
    return (kernel_size[1], x_shape[1], (lead + x_shape[0] * Hr) * OW)


def row_grid(U, x_shape, kernel_size, padding, dilation):
    """The (KW, C, N, Hr, OW) grid view of an ``unfold_rows`` buffer (its images, past the
    leading rows)."""
    lead, Hr, OW = row_geometry(x_shape, kernel_size, padding, dilation)
    return threads.view(U[:, :, lead * OW:], U.shape[:2] + (x_shape[0], Hr, OW))


def unfold_rows(x, kernel_size, padding, dilation, out=None):
    """Unfold only along the width: the stride-1 convolution's "row columns".

    Args:
        x: (N, C, H, W) array, any strides.
        kernel_size: (KH, KW); padding, dilation: (h, w) int pairs.
        out: optional buffer of ``row_unfold_shape``, its rows (j, c) contiguous (a slice of
            a larger one along the last axis: a thread's part of the batch).

    Returns:
        U (KW, C, lead*OW + N*Hr*OW) (``row_geometry``): ``lead`` zero rows of OW values,
        then every image's Hr rows, ``U[j, c, (lead + n*Hr + r)*OW + ow] = xpad[n, c, r + lead,
        ow + j*DW]`` with xpad x zero-padded by (PH, PW): each image's grid starts below its
        leading padding rows, which the zero rows before it (the previous image's trailing
        padding rows, or the leading ones) stand in for.

    Why: flattened, ``U2 = U.reshape(KW*C, -1)`` holds im2col's columns for every kernel row
    at once, shifted: the columns of kernel row i are the plain 2-D view
    ``U2[:, i*DH*OW : i*DH*OW + L]`` (the output pixel (n, oh, ow) sits at p = (n*Hr + oh)*OW
    + ow and reads grid rows oh + i*DH - lead of the same image). So a stride-1 convolution is
    KH GEMMs over views of a KW-fold copy of x instead of one GEMM over a KH*KW-fold copy: a
    third of the copying for 3x3 kernels. Positions with oh >= OH (the last Hr - OH rows of
    each image) mix two images and are cropped away by the caller. Sharing the padding rows
    makes a 3x3 "same" convolution's grid H+1 rows per image, not H+2 (9 of 8 rows at 8x8 go
    through the GEMMs, not 10).
    """
    xp = backend.xp_of(x)
    N, C, H, W = x.shape
    KW = kernel_size[1]
    ph, pw = padding
    dw = dilation[1]
    lead, Hr, OW = row_geometry(x.shape, kernel_size, padding, dilation)
    U = xp.empty(row_unfold_shape(x.shape, kernel_size, padding, dilation), x.dtype) \
        if out is None else out
    U[:, :, :lead * OW] = 0
    G = row_grid(U, x.shape, kernel_size, padding, dilation)         # (KW, C, N, Hr, OW)
    top = ph - lead                                 # the grid row of each image's first row
    xt = x.transpose(1, 0, 2, 3)                                     # (C, N, H, W) view
    rows = G[:, :, :, top:top + H]
    same = OW == W and pw % dw == 0           # "same" padding: one plane holds x unshifted
    planes = [pw // dw] if same else range(KW)
    for j in planes:
        if top:
            G[j, :, :, :top] = 0
        G[j, :, :, top + H:] = 0
        s = j * dw - pw                        # output column ow reads input column ow + s
        lo, hi = max(0, -s), max(0, min(OW, W - s))
        rows[j, :, :, :, :lo] = 0
        rows[j, :, :, :, hi:] = 0
        if hi > lo:
            rows[j, :, :, :, lo:hi] = xt[:, :, :, lo + s:hi + s]
    if same:
        # every other plane is the unshifted one moved by k = (j - jc)*DW positions of the
        # flat (n, r, ow) sequence of each channel: one long copy each, then the k columns
        # that came from the neighbouring row are zeroed (they are padding columns)
        jc = pw // dw
        flat = threads.view(G, (KW, C, -1))
        for j in range(KW):
            k = (j - jc) * dw
            if abs(k) >= OW:                   # the shift leaves the image: all padding
                G[j] = 0
            elif k > 0:
                flat[j, :, :-k] = flat[jc, :, k:]
                G[j, :, :, :, OW - k:] = 0
            elif k < 0:
                flat[j, :, -k:] = flat[jc, :, :k]
                G[j, :, :, :, :-k] = 0
    return U


def col2im(col, x_shape, stride, padding, dilation):
    """Fold columns back into an image, adding the entries that came from the same pixel.

    Args:
        col: (C, KH, KW, N, OH, OW) array (the layout ``im2col`` produces).
        x_shape: (N, C, H, W) of the image the columns were taken from.
        stride, padding, dilation: (h, w) int pairs.

    Returns:
        (N, C, H, W) array: an NCHW view of fresh channel-major (C, N, H, W) memory, with
        ``out[n, c, h, w] = sum of col[c, i, j, n, oh, ow] over oh*SH + i*DH - PH == h,
        ow*SW + j*DW - PW == w``.
    """
    xp = backend.xp_of(col)
    N, C, H, W = x_shape
    KH, KW = col.shape[1:3]
    OH, OW = col.shape[4:6]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Hp, Wp = H + 2 * ph, W + 2 * pw
    gx = xp.zeros((C, N, Hp, Wp), col.dtype) if (sh, sw) == (1, 1) else xp.empty(
        (C, N, Hp, Wp), col.dtype)

    def part(lo, hi):                      # images lo..hi-1 (on one host thread)
        if (sh, sw) == (1, 1):
            for i in range(KH):
                for j in range(KW):
                    h0, w0 = i * dh, j * dw
                    gx[:, lo:hi, h0:h0 + OH, w0:w0 + OW] += col[:, i, j, lo:hi]
            return
        # with a stride, the padded image splits into sh*sw phases, the pixels (a + sh*r,
        # b + sw*c); kernel offset (i, j) only reaches phase ((i*DH) % sh, (j*DW) % sw), as
        # an unstrided window shifted by ((i*DH) // sh, (j*DW) // sw). Summing each phase in
        # a dense buffer of its own and writing it out once replaces KH*KW strided
        # read-add-writes with unit-stride adds and one strided pass.
        for a in range(sh):
            for b in range(sw):
                target = gx[:, lo:hi, a::sh, b::sw]
                acc = xp.zeros(target.shape, col.dtype)
                for i in range(KH):
                    for j in range(KW):
                        if (i * dh) % sh == a and (j * dw) % sw == b:
                            r0, c0 = (i * dh) // sh, (j * dw) // sw
                            acc[:, :, r0:r0 + OH, c0:c0 + OW] += col[:, i, j, lo:hi]
                target[...] = acc

    threads.parallel_if_host(xp, part, N, items=col.size)
    return gx[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)


# ---------------------------------------------------------------------------------------------
# the strided input gradient on the host: col2im over the phase grid

def phase_axis(phase, stride, pad, size):
    """Along one axis, phase ``phase`` of the padded input (padded positions phase,
    phase + stride, ...): the first phase-grid row holding input, the input row there, and how
    many input rows (h0, h0 + stride, ...) the phase holds."""
    r0 = max(0, -(-(pad - phase) // stride))
    h0 = phase + r0 * stride - pad
    return r0, h0, max(0, -(-(size - h0) // stride))


def phase_grid(x_shape, kernel_size, stride, padding, dilation):
    """(Gh, Gw): the rows and columns per image of the grid ``fold_phases`` works on: at least
    the output's (OH, OW) plus the largest shift a kernel offset has within its phase, and at
    least the length of the padded input's longest phase (ceil((H + 2*PH) / SH) rows)."""
    N, C, H, W = x_shape
    size = []
    for axis, n in ((0, H), (1, W)):
        k, s, p, d = kernel_size[axis], stride[axis], padding[axis], dilation[axis]
        o = out_size(n, k, s, p, d)
        size.append(max(o + (k - 1) * d // s, -(-(n + 2 * p) // s)))
    return tuple(size)


def fold_phases(gcol, out, stride, padding, dilation, grid):
    """col2im (see ``col2im``) for columns that live on a wider grid: the host's input gradient
    of a strided convolution.

    Args:
        gcol: (C, KH, KW, n*Gh*Gw) with ``grid`` = (Gh, Gw) = ``phase_grid(...)``: the entry of
            output pixel (m, oh, ow) at p = (m*Gh + oh)*Gw + ow, zero on the grid's rows
            oh >= OH and columns ow >= OW (the GEMM of a zero-widened gy gives that).
        out: (C, n, H, W) array to write (every pixel is written).

    With stride (SH, SW) the padded image splits into SH*SW phases, its pixels (a + SH*R,
    b + SW*Q); kernel offset (i, j) reaches only phase ((i*DH) % SH, (j*DW) % SW), at R = oh +
    (i*DH) // SH, Q = ow + (j*DW) // SW. On the grid that shift is one flat offset s =
    ((i*DH) // SH)*Gw + (j*DW) // SW, and what it shifts in from before each image or row is
    the zero rows and columns past OH and OW. So each phase is a sum of whole shifted rows of
    gcol, long unit-stride adds, then one strided copy into ``out``; ``col2im`` instead adds
    every offset's (OH, OW) blocks in place, whose short rows NumPy runs at a fraction of its
    speed (3x3 stride 2 at 16x16 and 32x32, one core: about 2.8 and 2 times longer).
    """
    C, KH, KW, L = gcol.shape
    n, H, W = out.shape[1:]
    Gh, Gw = grid
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    acc = None
    for a in range(sh):
        r0, h0, nh = phase_axis(a, sh, ph, H)
        for b in range(sw):
            q0, w0, nw = phase_axis(b, sw, pw, W)
            if not (nh and nw):                 # a phase of padding only
                continue
            target = out[:, :, h0::sh, w0::sw]
            rows = slice(r0, r0 + nh), slice(q0, q0 + nw)
            shifts = [(i, j, (i * dh // sh) * Gw + j * dw // sw) for i in range(KH)
                      for j in range(KW) if (i * dh) % sh == a and (j * dw) % sw == b]
            if not shifts:
                target[...] = 0
            elif len(shifts) == 1 and shifts[0][2] == 0:
                i, j, _ = shifts[0]
                target[...] = gcol[:, i, j].reshape(C, n, Gh, Gw)[:, :, rows[0], rows[1]]
            else:
                if acc is None:
                    acc = np.empty((C, L), gcol.dtype)
                for k, (i, j, s) in enumerate(shifts):
                    if k == 0:
                        acc[:, :s] = 0
                        acc[:, s:] = gcol[:, i, j, :L - s]
                    else:
                        acc[:, s:] += gcol[:, i, j, :L - s]
                target[...] = acc.reshape(C, n, Gh, Gw)[:, :, rows[0], rows[1]]
    return out
