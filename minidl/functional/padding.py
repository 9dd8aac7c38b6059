"""The padding modes of ``F.pad`` besides plain constant padding: 'reflect', 'replicate' and
'circular' (each for the last 1, 2 or 3 dims, PyTorch's rules), and constant padding with
negative widths (which crop). ``shape.pad`` checks the common arguments and keeps the fast
constant path; it hands everything else to ``pad_other`` here.

Each padded axis is described by a source index: output position o (0 <= o < n + before +
after) copies input position src(o). The source sequence is cut into a few runs that are
slices of the input (ascending, descending, or one entry repeated), so forward is a
concatenation of slices and backward adds each run's gradient back onto its slice: no
scatter with atomics, the same sums in the same order on every run and device.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_number
from ..autograd import Function
MODES = ("constant", "reflect", "replicate", "circular")


def source_index(mode, n, before, after):
    """The input position each output position copies along one axis of size n (host ints).

    reflect:   src = reflect(o - before) about the edges 0 and n-1 (edge not repeated):
               i < 0 -> -i,  i > n-1 -> 2(n-1) - i             (needs before, after < n)
    replicate: src = clip(o - before, 0, n-1)
    circular:  the axis is first cropped by the negative widths (c0 = max(-before, 0) from
               the start, max(-after, 0) from the end, leaving m entries), then wrapped:
               src = c0 + (o - max(before, 0)) mod m             (PyTorch's order)
    """
    o = np.arange(n + before + after)
    if mode == "circular":
        c0 = max(-before, 0)
        m = n - c0 - max(-after, 0)
        return c0 + (o - max(before, 0)) % max(m, 1)
    i = o - before
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def runs(src):
    """Cut a source index into maximal runs (out_start, in_start, length, step), step in
    (1, -1, 0): out[out_start + k] = in[in_start + step * k] for 0 <= k < length."""
    out, o, L = [], 0, len(src)
    while o < L:
        step = int(src[o + 1] - src[o]) if o + 1 < L else 1
        if step not in (1, -1, 0):
            step = 1
        k = o + 1
        while k < L and src[k] - src[k - 1] == step:
            k += 1
        out.append((o, int(src[o]), k - o, step))
        o = k
    return tuple(out)


def _index(axis, ndim, sl):
    return (slice(None),) * axis + (sl,) + (slice(None),) * (ndim - axis - 1)


def _in_slice(start, length, step):
    """The input slice a run reads (descending runs read backwards)."""
    if step == 1:
        return slice(start, start + length)
    if step == -1:
        stop = start - length
        return slice(start, stop if stop >= 0 else None, -1)
    return slice(start, start + 1)


class PadIndexed(Function):
    """y = x with each listed axis rebuilt from its source index (see ``source_index``):
    y[..., o, ...] = x[..., src(o), ...] along every padded axis in turn.

    ``axes`` is a tuple of (axis, n, runs) with the runs of ``runs(src)``.
    Gradient (the adjoint, axis by axis in reverse order): gx[..., i, ...] = sum over the o
    with src(o) = i of gy[..., o, ...]; computed run by run as gx[in slice] += gy[out slice]
    (a repeated entry adds its run's sum), so overlapping runs add in a fixed order."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        xp = backend.xp_of(x)
        if not self.axes:                      # all widths 0: a new tensor all the same, as
            return x.copy()                    # PyTorch's pad (never a view of the input)
        for axis, _, rs in self.axes:
            pieces = []
            for _, start, length, step in rs:
                piece = x[_index(axis, x.ndim, _in_slice(start, length, step))]
                if step == 0 and length > 1:
                    shape = list(piece.shape)
                    shape[axis] = length
                    piece = xp.broadcast_to(piece, tuple(shape))
                pieces.append(piece)
            if not pieces:
                shape = list(x.shape)
                shape[axis] = 0
                x = xp.empty(tuple(shape), x.dtype)
            else:
                x = xp.concatenate(pieces, axis=axis)
        return x

    def backward(self, gy):
        xp = backend.xp_of(gy)
        for axis, n, rs in reversed(self.axes):
            shape = list(gy.shape)
            shape[axis] = n
            gx = xp.zeros(tuple(shape), gy.dtype)
            for o, start, length, step in rs:
                g = gy[_index(axis, gy.ndim, slice(o, o + length))]
                if step == 0:
                    g = g.sum(axis=axis, keepdims=True)
                gx[_index(axis, gy.ndim, _in_slice(start, length, step))] += g
            gy = gx
        return gy


def _check_modes(input, pad, mode):
    """PyTorch's rules for the non-constant modes: 2, 4 or 6 pad entries (the last 1, 2 or
    3 dims) on an input with one or two more dims (an optional batch and the channels)."""
    k = len(pad) // 2
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise ValueError(
            f"pad: mode={mode!r} pads the last 1, 2 or 3 dims of a (batched or unbatched) "
            f"input: 2 entries for a 2-D or 3-D input, 4 for 3-D or 4-D, 6 for 4-D or 5-D; "
            f"got {len(pad)} entries for an input of shape {input.shape}")
    for j in range(k):
        before, after = pad[2 * j], pad[2 * j + 1]
        d = input.ndim - 1 - j
        n = input.shape[d]
        if mode == "reflect" and (before >= n or after >= n):
            raise ValueError(f"pad: mode='reflect' needs each padding to be smaller than the "
                             f"size of the dim it pads, got ({before}, {after}) for dim {d} "
                             f"of size {n} (input shape {input.shape})")
        out = n + before + after
        if n == 0 and out > 0:
            raise ValueError(f"pad: mode={mode!r} cannot pad dim {d}: it is empty (input "
                             f"shape {input.shape})")
        if mode == "circular":
            m = n - max(-before, 0) - max(-after, 0)
            if out < 0 or max(before, after) > max(m, 0) or (m <= 0 and out > 0):
                raise ValueError(
                    f"pad: mode='circular' wraps around at most once: each padding must be "
                    f"at most the size of dim {d} after cropping by the negative paddings "
                    f"({m}), got ({before}, {after}) for size {n} (input shape {input.shape})")
        elif out < 1:
            raise ValueError(f"pad: padding ({before}, {after}) leaves dim {d} of size {n} "
                             f"with {out} entries; mode={mode!r} needs at least 1")


def pad_other(input, pad, mode, value):
    """``F.pad`` for the non-constant modes and for constant padding with negative widths;
    ``pad`` is already a checked tuple of ints (even length, at most 2 per dim)."""
    if mode not in MODES:
        raise ValueError(f"pad: 'mode' must be one of {MODES}, got {mode!r}")
    if mode == "constant":
        return _constant_with_crop(input, pad, value)
    if value is not None and value != 0:
        raise ValueError(f"pad: mode={mode!r} takes no fill 'value' (it copies input "
                         f"entries), got value={value!r}")
    _check_modes(input, pad, mode)
    axes = []
    for j in range(len(pad) // 2):
        before, after = pad[2 * j], pad[2 * j + 1]
        if before == after == 0:
            continue
        d = input.ndim - 1 - j
        n = input.shape[d]
        axes.append((d, n, runs(source_index(mode, n, before, after))))
    return PadIndexed(tuple(axes))(input)


def _constant_with_crop(input, pad, value):
    """Constant padding where some widths are negative (PyTorch allows it in this mode): crop
    by those first (one ascending run per cropped axis), then pad by the positive ones."""
    from .shape import Pad  # noqa: PLC0415  (shape imports this module)
    crop, widths = [], [(0, 0)] * input.ndim
    for j in range(len(pad) // 2):
        before, after = pad[2 * j], pad[2 * j + 1]
        d = input.ndim - 1 - j
        n = input.shape[d]
        if n + min(before, 0) + min(after, 0) < 0:
            raise ValueError(f"pad: negative padding ({before}, {after}) crops more than dim "
                             f"{d} holds ({n}; input shape {input.shape})")
        if min(before, after) < 0:
            kept = n + min(before, 0) + min(after, 0)
            crop.append((d, n, ((0, max(-before, 0), kept, 1),) if kept else ()))
        widths[d] = (max(before, 0), max(after, 0))
    return Pad(tuple(widths), fill_value(value))(PadIndexed(tuple(crop))(input))


def fill_value(value):
    """The constant of constant padding as a Python number (None -> 0)."""
    if value is None:
        return 0.0
    if isinstance(value, np.generic):
        value = value.item()
    check_number("pad", "value", value)
    return value
