"""Resizing of NCHW batches: ``interpolate`` with PyTorch's 'nearest' and 'bilinear' modes.

Both modes are separable: along each spatial axis an output position reads K input positions
(nearest: K = 1; bilinear: K = 2) with weights, a 1-D map ``idx (K, OUT)``, ``w (K, OUT)``
computed on the host from the sizes alone (no data leaves the device). The forward gathers
along H, then along W; the backward applies the transposed maps (W, then H). The transposed
map of an axis lists, for every input position, the output positions that read it (padded
with zero weights to a common count R): its gradient is then R gathers and multiply-adds in a
fixed order, a scatter-add without atomics, deterministic on the CPU and the GPU alike.

Nearest with integer factors (every input row repeated k times) skips the gathers: forward
writes x into a (N, C, H, kh, W, kw) buffer read as (N, C, H*kh, W*kw), backward sums over the
repeats with plane adds.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from .._checks import check_bool
from ..autograd import Function
from ._utils import check_float

_MODES = ("nearest", "bilinear")
_TORCH_ONLY = ("linear", "bicubic", "trilinear", "area", "nearest-exact")


# ---------------------------------------------------------------------------------------------
# 1-D maps (host NumPy, from sizes only)

def _nearest_map(n_in, n_out, scale):
    """PyTorch's legacy 'nearest': src = min(floor(dst * s), n_in - 1) in float32 arithmetic,
    s = 1/scale_factor when one is used, else n_in/n_out (equal and doubled sizes exactly)."""
    dst = np.arange(n_out)
    if n_out == n_in:
        src = dst
    elif n_out == 2 * n_in:
        src = dst // 2
    else:
        s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
        src = np.floor(dst.astype(np.float32) * s).astype(np.int64)
        src = np.minimum(src, n_in - 1)
    return src[None], None


def _linear_map(n_in, n_out, scale, align_corners):
    """PyTorch's linear interpolation weights along one axis (float64):
        align_corners: src = dst * (n_in - 1)/(n_out - 1)            (0 when n_out == 1)
        else:          src = max((dst + 0.5) * s - 0.5, 0), s = 1/scale_factor or n_in/n_out
        i0 = min(floor(src), n_in - 1), i1 = min(i0 + 1, n_in - 1), l = clip(src - i0, 0, 1)
        y[dst] = (1 - l) * x[i0] + l * x[i1].
    An axis whose size is kept is copied (the identity map, without weights)."""
    dst = np.arange(n_out, dtype=np.float64)
    if n_out == n_in:        # an axis that keeps its size is copied, whatever scale_factor
        return np.arange(n_out)[None], None                      # says (as PyTorch does)
    if align_corners:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = dst * s
    else:
        s = 1.0 / scale if scale else n_in / n_out
        src = np.maximum((dst + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0, 0.0, 1.0)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return np.stack([i0, i1]), np.stack([1.0 - lam, lam])


def _transposed(idx, w, n_in):
    """The transpose of a map (K, OUT) -> (R, IN): for every input position, the output
    positions that read it (ascending) and their weights, zero-weight padded to R entries.
    The weights are None when they are all 1 (nearest, every input read equally often)."""
    K, n_out = idx.shape
    src = idx.ravel()
    dst = np.tile(np.arange(n_out), K)
    wt = np.ones(src.size) if w is None else w.ravel()
    keep = wt != 0
    src, dst, wt = src[keep], dst[keep], wt[keep]
    order = np.lexsort((dst, src))                    # by input position, then output
    src, dst, wt = src[order], dst[order], wt[order]
    counts = np.bincount(src, minlength=n_in)
    R = max(int(counts.max(initial=0)), 1)
    rank = np.arange(src.size) - (np.cumsum(counts) - counts)[src]
    tidx = np.zeros((R, n_in), np.int64)
    tw = np.zeros((R, n_in))
    tidx[rank, src] = dst
    tw[rank, src] = wt
    if w is None and (counts == R).all():
        tw = None
    return tidx, tw


def _repeat_factor(idx, w, n_in, n_out):
    """k when the map repeats every input k times in order (src = dst // k), else None."""
    if w is not None or n_out % n_in:
        return None
    k = n_out // n_in
    return k if np.array_equal(idx[0], np.arange(n_out) // k) else None


def _is_identity(idx, w, n_in):
    return w is None and idx.shape[1] == n_in and np.array_equal(idx[0], np.arange(n_in))


_DEVICE_MAPS = {}      # (device, dtype, idx, w) -> the map's device copies (see _on_device)
_DEVICE_MAPS_KEPT = 64


def _on_device(a, idx, w):
    """The host map (idx, w) as arrays on a's device, w in a's dtype.

    Device copies are kept (the last 64 maps), so a step that is captured as a CUDA graph
    (``minidl.cuda_graph``) finds the copies its eager warm-up calls made: a host-to-device
    copy cannot be captured."""
    xp = backend.xp_of(a)
    if xp is np:
        return idx, (None if w is None else w.astype(a.dtype))
    key = (str(backend.device_of(a)), a.dtype.str, idx.shape, idx.tobytes(),
           None if w is None else w.tobytes())
    maps = _DEVICE_MAPS.get(key)
    if maps is None:
        backend.refuse_in_capture("interpolate with sizes it did not run with in the warm-up "
                                  "(its index maps are copied to the GPU on first use)")
        maps = (xp.asarray(idx), None if w is None else xp.asarray(w.astype(a.dtype)))
        if len(_DEVICE_MAPS) >= _DEVICE_MAPS_KEPT:
            _DEVICE_MAPS.pop(next(iter(_DEVICE_MAPS)))
        _DEVICE_MAPS[key] = maps
    return maps


def _apply(a, axis, idx, w):
    """sum_k take(a, idx[k], axis) * w[k] (broadcast along ``axis``) for a 4-D array."""
    xp = backend.xp_of(a)
    idx, w = _on_device(a, idx, w)
    if w is not None:
        if axis == 2:
            w = w[:, :, None]
    out = None
    for k in range(idx.shape[0]):
        t = xp.take(a, idx[k], axis=axis)
        if w is not None:
            t *= w[k]
        if out is None:
            out = t
        else:
            out += t
    return out


def _repeat(x, kh, kw):
    """y[n, c, h*kh + a, w*kw + b] = x[n, c, h, w]: kw strided writes of x into the first
    row of each repeat, then kh - 1 contiguous row copies (NumPy's copy of a broadcast with
    such short inner axes was 2x slower)."""
    N, C, H, W = x.shape
    y = backend.xp_of(x).empty((N, C, H, kh, W, kw), x.dtype)
    for b in range(kw):
        y[:, :, :, 0, :, b] = x
    for a in range(1, kh):
        y[:, :, :, a] = y[:, :, :, 0]
    return y.reshape(N, C, H * kh, W * kw)


def _sum_repeats(gy, kh, kw):
    """gx[n, c, h, w] = sum over a < kh, b < kw of gy[n, c, h*kh + a, w*kw + b]: the kh rows
    added as whole planes, then the kw columns (a reshape-and-sum over the short repeat axes
    was 10x slower in NumPy)."""
    N, C, OH, OW = gy.shape
    g = gy.reshape(N, C, OH // kh, kh, OW // kw, kw)
    t = g[:, :, :, 0] + g[:, :, :, 1] if kh > 1 else g[:, :, :, 0]   # (N, C, H, W, kw)
    for a in range(2, kh):
        t += g[:, :, :, a]
    gx = t[..., 0] + t[..., 1] if kw > 1 else t[..., 0]
    for b in range(2, kw):
        gx += t[..., b]
    return gx.copy() if kh * kw == 1 else gx          # (1, 1): a view of gy


class Interpolate(Function):
    """y = A_H x A_W^T per (n, c) plane, where A_H (OH, H) and A_W (OW, W) are the 1-D
    interpolation matrices (nearest: one 1 per row; bilinear: 1 - l and l), applied as gathers.

    Gradient:
        gx = A_H^T gy A_W          (the transposed maps: R gathers each, in a fixed order)
    With integer nearest factors (kh, kw): y = x repeated, gx[n, c, h, w] = sum of
    gy[n, c, h*kh + a, w*kw + b] over a < kh, b < kw.
    """

    def __init__(self, maps, out_size):
        self.maps, self.out_size = maps, out_size       # maps: ((idx, w), (idx, w)), host

    def forward(self, x):
        N, C, H, W = self.in_shape = x.shape
        (ih, wh), (iw, ww) = self.maps
        kh, kw = _repeat_factor(ih, wh, H, self.out_size[0]), _repeat_factor(iw, ww, W,
                                                                             self.out_size[1])
        self.repeat = (kh, kw) if kh and kw else None
        if self.repeat:
            return _repeat(x, kh, kw)
        y = x
        for axis, (idx, w), n in ((2, self.maps[0], H), (3, self.maps[1], W)):
            if not _is_identity(idx, w, n):
                y = _apply(y, axis, idx, w)
        return y if y is not x else x.copy()

    def backward(self, gy):
        N, C, H, W = self.in_shape
        if self.repeat:
            return _sum_repeats(gy, *self.repeat)
        g = gy
        for axis, (idx, w), n in ((3, self.maps[1], W), (2, self.maps[0], H)):
            if not _is_identity(idx, w, n):
                g = _apply(g, axis, *_transposed(idx, w, n))
        return g if g is not gy else gy.copy()


# ---------------------------------------------------------------------------------------------
# public API

def _pair_of(op, name, value, kind):
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    ok = all(isinstance(v, kind) and not isinstance(v, bool) for v in vals)
    if len(vals) != 2 or not ok:
        what = "an int or a pair of ints" if kind is numbers.Integral else \
            "a number or a pair of numbers"
        raise TypeError(f"{op}: '{name}' must be {what} for a 4-D input, got {value!r}")
    return vals


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize an (N, C, H, W) batch to ``size`` or by ``scale_factor``, as PyTorch does.

    Args:
        input: (N, C, H, W) floating-point tensor.
        size: output (OH, OW) or one int for both; or
        scale_factor: number or (h, w) pair: OH = floor(H * scale_factor) (same for W). The
            factor itself then sets the sampling step (1/scale_factor), unless
            ``recompute_scale_factor=True`` (then H/OH, as with ``size``).
        mode: 'nearest' (PyTorch's legacy nearest: src = floor(dst * H/OH)) or 'bilinear'.
        align_corners: bilinear only (None means False): True maps the corner pixels' centres
            onto each other, src = dst*(H-1)/(OH-1); False maps the pixel areas,
            src = (dst + 0.5)*H/OH - 0.5, clamped at 0.
        antialias: not supported (False only).

    Returns:
        (N, C, OH, OW) tensor of the input's dtype.
    """
    op = "interpolate"
    check_float(op, "input", input)
    if not isinstance(mode, str) or mode not in _MODES:
        if mode in _TORCH_ONLY:
            raise ValueError(f"{op}: mode {mode!r} is not supported by minidl; supported modes "
                             f"are {_MODES}")
        raise ValueError(f"{op}: 'mode' must be one of {_MODES}, got {mode!r}")
    if input.ndim != 4:
        raise ValueError(f"{op}: 'input' must be 4-D (N, C, H, W) (only 2-D resizing is "
                         f"supported), got shape {input.shape}")
    if align_corners is not None:
        if mode == "nearest":
            raise ValueError(f"{op}: 'align_corners' can only be set with an interpolating "
                             f"mode (bilinear), got align_corners={align_corners!r} with mode "
                             f"'nearest'")
        align_corners = check_bool(op, "align_corners", align_corners, or_none=True)
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported by minidl")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of 'size' and 'scale_factor' must be given, got "
                         f"size={size!r}, scale_factor={scale_factor!r}")
    H, W = input.shape[2:]
    if size is not None:
        if recompute_scale_factor:                 # False is allowed, as in PyTorch
            raise ValueError(f"{op}: 'recompute_scale_factor' is only meaningful with "
                             f"'scale_factor', not with 'size'")
        out = tuple(int(v) for v in _pair_of(op, "size", size, numbers.Integral))
        scales = (None, None)
    else:
        factors = _pair_of(op, "scale_factor", scale_factor, numbers.Real)
        if not all(math.isfinite(f) and f > 0 for f in factors):
            raise ValueError(f"{op}: 'scale_factor' must be positive and finite, got "
                             f"{scale_factor!r}")
        out = (math.floor(H * float(factors[0])), math.floor(W * float(factors[1])))
        scales = (None, None) if recompute_scale_factor else tuple(float(f) for f in factors)
    if min(out) < 1 or min(H, W) < 1:
        raise ValueError(f"{op}: input and output sizes must be positive, got input "
                         f"{input.shape} and output size {out}")
    if mode == "nearest":
        maps = tuple(_nearest_map(n, m, s) for n, m, s in zip((H, W), out, scales))
    else:
        maps = tuple(_linear_map(n, m, s, bool(align_corners))
                     for n, m, s in zip((H, W), out, scales))
    return Interpolate(maps, out)(input)
