"""Depthwise convolution on the host, computed directly: each channel with its own kernel, and
no columns.

For a depthwise layer (groups = input channels = output channels) im2col writes a KH*KW-fold
copy of the input and then runs one GEMM of a single row per channel: the copy is the whole
cost (a MobileNetV2 layer of 96 channels at 32x32, batch 64: 226 MB of columns per call).
Here each kernel offset is one multiply and one add over a block of images small enough for
the cache, and nothing of the input's size is written besides the result.

Index map (x zero-padded by (PH, PW) on each side; sizes by PyTorch's floor rule):

    y[n, c, oh, ow] = sum_(i, j) W[c, 0, i, j] * xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]

On phase grids. The padded input splits into SH*SW phases, phase (a, b) holding the padded
positions (a + r*SH, b + q*SW) at (r - LH, q - LW) of a grid of Hq x Wq = (ceil(Hp/SH) - LH) x
(ceil(Wp/SW) - LW) (stride 1: one phase, the padded image itself), where LH and LW are the
leading rows and columns left out (see below; 0 or the padding for stride 1). Kernel offset
(i, j) reads phase k(i, j) = (i*DH mod SH, j*DW mod SW) shifted by (i*DH div SH - LH,
j*DW div SW - LW) grid cells. A block of b images lays each phase out as b*Hq*Wq positions per
channel, output position (n, oh, ow) at t = (n*Hq + oh)*Wq + ow, and offset (i, j) reads it at
t + off(i, j), off(i, j) = (i*DH div SH - LH)*Wq + (j*DW div SW - LW), which may be negative
(a margin of zeros precedes the first grid):

    Z[c, t] = sum_(i, j) W[c, 0, i, j] * P_k(i, j)[c, t + off(i, j)]    (t < L, whole grid rows)

so each offset is one multiply and one add over a run of L contiguous positions, and y is Z
read at the valid positions (oh < OH, ow < OW; the others are wasted work, Hq*Wq / (OH*OW)
- 1). Each image's and each row's leading padding is left out of the grids where the
trailing zeros before it can stand in (``_shared_lead``), so a 3x3 "same" convolution wastes
6% at 32x32, 27% at 8x8 and 56% at 4x4 (with both paddings kept: 13%, 56% and 125%).
Gradients, with gy placed on the same grid as G (zero at the wasted positions):

    gP_k(i, j)[c, t + off(i, j)] += W[c, 0, i, j] * G[c, t]     (gx: the phases' input positions)
    gW[c, 0, i, j] = sum_t G[c, t] * P_k(i, j)[c, t + off(i, j)]  (one dot product per channel)

Values read at wasted positions (the padding, a neighbouring row or image, or a previous
block's values past the grid's end) only reach wasted outputs, or are multiplied by G's zeros
there: exact for finite inputs. A non-finite input value makes its channel's gW non-finite
(0 * inf is NaN), as im2col's would be at the offsets that read it.

The grids are (channel, position) planes, in blocks of enough images for runs of at least
``RUN`` positions per channel (NumPy runs one loop per run, and shorter runs measured up to
2.5x slower per value here). Work is split by images over minidl's threads
(``kernels.threads``). Results are channel-major (C, N, H, W) memory returned as NCHW views,
like every other convolution's. ``conv2d`` takes this path for outputs of at least
``MIN_WIDTH`` columns; below that the grid's waste makes it slower than im2col (at 4x4 it is
faster: MobileNetV2's 960-channel layers, RESULTS.md).
"""
from __future__ import annotations

import numpy as np

from . import threads
from .im2col import phase_axis

RUN = 2048              # grid positions per channel at least, in a block of images
CHUNK = 1 << 17         # values per buffer at most, in a block's chunk of channels
MIN_WIDTH = 4           # output columns from which conv2d takes this path


def _zeros_around(stride, pad, size):
    """Along one axis, per phase holding input: (zero rows before its input, zero rows after
    it) on its grid of ceil((size + 2*pad) / stride) rows."""
    hq = -(-(size + 2 * pad) // stride)
    return [(r0, hq - r0 - n) for r0, _, n in
            (phase_axis(a, stride, pad, size) for a in range(stride)) if n]


def _shared_lead(stride, pad, size, out):
    """Along one axis, how many leading rows (or columns) each phase's grid drops: the most
    that every phase holding input has before its input, if the ``out`` outputs still fit in
    the shorter grid; else 0. In the flat (image, row, column) order of a block's grid, the
    reads that went to a dropped row then land in the trailing zero rows of the image (or row)
    before it, and every phase has at least as many of those (the padding is the same on both
    sides: ``_zeros_around``, checked in the tests). A stride-1 3x3 "same" convolution's grid
    is (H+1) x (W+1) per image instead of (H+2) x (W+2): 81 positions at 8x8, not 100."""
    lead = min(before for before, _ in _zeros_around(stride, pad, size))
    hq = -(-(size + 2 * pad) // stride)
    return lead if out <= hq - lead else 0


class _Grid:
    """The phase grids of a depthwise convolution and its blocks of images."""

    def __init__(self, x_shape, kernel_size, stride, padding, dilation):
        self.N, self.C, self.H, self.W = x_shape
        (KH, KW), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        self.stride, self.padding = stride, padding
        Hp, Wp = self.H + 2 * padding[0], self.W + 2 * padding[1]
        self.OH, self.OW = (Hp - dh * (KH - 1) - 1) // sh + 1, (Wp - dw * (KW - 1) - 1) // sw + 1
        # one phase's grid: the padded rows and columns, less the leading ones every phase can
        # share with the trailing zeros before it (``_shared_lead``)
        lead_h = _shared_lead(sh, padding[0], self.H, self.OH)
        lead_w = _shared_lead(sw, padding[1], self.W, self.OW)
        self.lead = lead_h, lead_w
        self.Hq, self.Wq = -(-Hp // sh) - lead_h, -(-Wp // sw) - lead_w
        self.cells = self.Hq * self.Wq                               # positions per image
        self.phases = sh * sw
        # zeros before the first grid row, which the first image's leading reads land in
        self.margin = lead_h * self.Wq + lead_w
        # kernel offset (i, j): its phase and its shift on that phase's grid
        self.offsets = [((i * dh % sh) * sw + j * dw % sw,
                         (i * dh // sh - lead_h) * self.Wq + j * dw // sw - lead_w)
                        for i in range(KH) for j in range(KW)]
        # read past the last grid row by the last offsets
        self.slack = max(0, max(s for _, s in self.offsets) + (self.OH - self.Hq) * self.Wq)
        self.parts = self._parts()
        self.block = -(-RUN // self.cells)
        self.chunk = max(1, CHUNK // (self.block * self.cells))

    def tiles(self, lo, hi):
        """The tiles of images lo..hi-1: (first image, image count, channel slice), blocks of
        images cut into chunks of channels."""
        return [(a, min(self.block, hi - a), slice(c, min(c + self.chunk, self.C)))
                for a in range(lo, hi, self.block) for c in range(0, self.C, self.chunk)]

    def buffer(self, images, dtype, phases=None):
        """Zeroed grid buffers for tiles of up to ``images`` images: (phases, channels,
        positions)."""
        n = self.margin + images * self.cells + self.slack
        shape = (self.phases if phases is None else phases, min(self.chunk, self.C), n)
        return np.zeros(shape, dtype)

    def grid(self, buf, b, ch=None):
        """The logical (channels, b, Hq, Wq) grid of a tile of b images in one phase's buffer
        (the tile's first ``ch.stop - ch.start`` channels of it)."""
        c = buf.shape[0] if ch is None else ch.stop - ch.start
        return buf[:c, self.margin:self.margin + b * self.cells].reshape(c, b, self.Hq, self.Wq)

    def rows(self, b):
        """R: the grid rows of a tile of b images whose positions every offset's run covers
        (all the valid ones; a run is L = R*Wq positions)."""
        return (b - 1) * self.Hq + self.OH

    def run(self, buf, shift, R, ch):
        """R grid rows of one phase's buffer from position ``shift`` on, for a tile's channels
        ``ch``: (channels, R*Wq), one run per channel."""
        start = self.margin + shift
        return buf[:ch.stop - ch.start, start:start + R * self.Wq]

    @staticmethod
    def weights(W):
        """Per kernel offset (the grid's order), W's (C, 1) weights to multiply a ``run``."""
        return [W[:, 0, i, j].reshape(-1, 1) for i in range(W.shape[2])
                for j in range(W.shape[3])]

    def _parts(self):
        """Per phase: its buffer's index, the (rows, columns) slices of its grid that hold
        input, and the (rows, columns) slices of the input they hold (``self.parts``)."""
        out = []
        for a in range(self.stride[0]):
            r0, h0, nh = phase_axis(a, self.stride[0], self.padding[0], self.H)
            r0 -= self.lead[0]
            for c in range(self.stride[1]):
                c0, w0, nw = phase_axis(c, self.stride[1], self.padding[1], self.W)
                c0 -= self.lead[1]
                if nh and nw:
                    out.append((a * self.stride[1] + c,
                                (slice(r0, r0 + nh), slice(c0, c0 + nw)),
                                (slice(h0, None, self.stride[0]),
                                 slice(w0, None, self.stride[1]))))
        return out

    def scatter(self, buf, b, ch, xc):
        """Copy a tile's images (channels, b, H, W) into their phases' grids (the rest stays as
        it is: zero)."""
        for k, (gr, gc), (xr, xcols) in self.parts:
            self.grid(buf[k], b, ch)[:, :, gr, gc] = xc[:, :, xr, xcols]

    def gather(self, buf, b, ch, out):
        """The inverse: the phases' grids' input positions into a tile's images ``out``."""
        for k, (gr, gc), (xr, xcols) in self.parts:
            out[:, :, xr, xcols] = self.grid(buf[k], b, ch)[:, :, gr, gc]

    def valid(self, grid):
        return grid[:, :, :self.OH, :self.OW]


def _each_tile(g, dtype, work, body, total=None):
    """Call ``body(a, b, ch, grids, pair, acc)`` for every tile (``_Grid.tiles``), the images
    split over minidl's threads. ``grids`` (a phase-grid buffer) and ``pair`` (two one-phase
    buffers) are zeroed once per thread and reused from tile to tile. With ``total`` (a
    shape), ``acc`` is a zeroed array of it per thread, and the threads' arrays are returned
    summed in a fixed order (``threads.summed``); else ``acc`` is None."""
    def part(lo, hi):
        size = min(g.block, hi - lo)
        grids, pair = g.buffer(size, dtype), g.buffer(size, dtype, phases=2)
        acc = None if total is None else np.zeros(total, dtype)
        for a, b, ch in g.tiles(lo, hi):
            body(a, b, ch, grids, pair, acc)
        return acc

    if total is None:
        threads.parallel(part, g.N, items=work)
        return None
    return threads.summed(part, g.N, items=work)


def forward(x, W, stride, padding, dilation):
    """Depthwise convolution y (N, C, OH, OW) of x (N, C, H, W) by W (C, 1, KH, KW)."""
    g = _Grid(x.shape, W.shape[2:], stride, padding, dilation)
    Y = np.empty((g.C, g.N, g.OH, g.OW), x.dtype)
    xc, w = x.transpose(1, 0, 2, 3), g.weights(W)

    def tile(a, b, ch, P, ZT, _):
        g.scatter(P, b, ch, xc[ch, a:a + b])                      # the borders stay zero
        R = g.rows(b)
        z, t = g.run(ZT[0], 0, R, ch), g.run(ZT[1], 0, R, ch)
        (k, shift), rest = g.offsets[0], zip(g.offsets[1:], w[1:])
        np.multiply(g.run(P[k], shift, R, ch), w[0][ch], out=z)
        for (k, shift), wk in rest:
            np.multiply(g.run(P[k], shift, R, ch), wk[ch], out=t)
            z += t
        Y[ch, a:a + b] = g.valid(g.grid(ZT[0], b, ch))

    _each_tile(g, x.dtype, Y.size * len(w), tile)
    return Y.transpose(1, 0, 2, 3)


def input_grad(gy, W, x_shape, stride, padding, dilation):
    """gx (N, C, H, W) of the depthwise convolution of an x of ``x_shape`` by W."""
    g = _Grid(x_shape, W.shape[2:], stride, padding, dilation)
    GX = np.empty((g.C, g.N, g.H, g.W), gy.dtype)
    gyc, w = gy.transpose(1, 0, 2, 3), g.weights(W)

    def tile(a, b, ch, GP, GT, _):
        g.valid(g.grid(GT[0], b, ch))[...] = gyc[ch, a:a + b]   # the wasted positions stay 0
        R = g.rows(b)
        gg, t = g.run(GT[0], 0, R, ch), g.run(GT[1], 0, R, ch)
        GP[:, :, :g.margin + b * g.cells + g.slack] = 0
        for (k, shift), wk in zip(g.offsets, w):
            np.multiply(gg, wk[ch], out=t)
            g.run(GP[k], shift, R, ch)[...] += t
        g.gather(GP, b, ch, GX[ch, a:a + b])

    _each_tile(g, gy.dtype, gy.size * len(w), tile)
    return GX.transpose(1, 0, 2, 3)


def weight_grad(gy, x, W_shape, stride, padding, dilation):
    """gW (C, 1, KH, KW) of the depthwise convolution of x by a W of ``W_shape``.
    Each thread sums its images' products; the threads' sums are added in a fixed order."""
    g = _Grid(x.shape, W_shape[2:], stride, padding, dilation)
    xc, gyc = x.transpose(1, 0, 2, 3), gy.transpose(1, 0, 2, 3)

    def tile(a, b, ch, P, G, total):
        g.scatter(P, b, ch, xc[ch, a:a + b])
        g.valid(g.grid(G[0], b, ch))[...] = gyc[ch, a:a + b]
        R = g.rows(b)
        gg = g.run(G[0], 0, R, ch)
        for n, (k, shift) in enumerate(g.offsets):
            total[n, ch] += np.einsum("ct,ct->c", gg, g.run(P[k], shift, R, ch))

    total = _each_tile(g, x.dtype, gy.size * len(g.offsets), tile, (len(g.offsets), g.C))
    return np.ascontiguousarray(total.T).reshape(W_shape)
