"""Scaled dot-product attention (PyTorch 2.x semantics), one Function with a closed-form backward.

    softmax(Q K^T * scale + mask) V,   Q (..., L, E), K (..., S, E), V (..., S, Ev)

Masks: a boolean ``attn_mask`` marks the (query, key) pairs that take part (True) and the ones
left out (False); a floating-point one is added to the scores. ``is_causal`` lets query i see
keys 0..i only (the top-left aligned lower triangle of the L x S scores).

Fully masked rows (a query that may see no key) give a zero output row, zero attention weights
and zero gradients, instead of the NaN of a plain softmax over -inf. PyTorch's
``scaled_dot_product_attention`` does the same; its ``MultiheadAttention`` with
``need_weights=True`` returns NaN there.

``scaled_dot_product_attention_with_weights`` returns the attention weights too (as
``nn.MultiheadAttention`` needs): the ones the values are averaged with, after dropout.

Reference: Vaswani et al., Attention Is All You Need, 2017.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, kernels
from ..autograd import Function
from ..random import default_generator
from ..tensor import Tensor
from .._checks import check_bool, check_number
from ._utils import blockwise, check_float, sum_to, type_name

_OP = "scaled_dot_product_attention"


def _swap(a):
    return a.swapaxes(-1, -2)


def _masked_softmax(xp, s):
    """Softmax over the last axis, in place on the scores ``s``; a row of -inf only (fully
    masked) becomes zeros instead of NaN."""
    if s.shape[-1] == 0:
        return s
    m = s.max(axis=-1, keepdims=True)
    s -= xp.where(m == -math.inf, 0, m)       # exp(-inf - 0) = 0 on a fully masked row
    xp.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    s /= xp.where(total == 0, 1, total)
    return s


_BLOCK = 1 << 16      # score values per block of batch rows (its softmax passes in cache)


def _lead(a, lo, hi, ndim):
    """The part of ``a`` for rows lo..hi of the leading batch axis of an ndim-D result: a slice
    where ``a`` has that axis, ``a`` itself where it broadcasts along it (or is None)."""
    if a is None or ndim == 2 or a.ndim < ndim or a.shape[0] == 1:
        return a
    return a[lo:hi]


def _by_rows(xp, fn, batch, per_row):
    """``fn(lo, hi)`` over the rows of the leading batch axis (one call without batch axes):
    on the host in blocks of about ``_BLOCK`` score values, on the host threads."""
    if not batch:
        fn(0, 1)
        return
    blockwise(xp, fn, batch[0], max(1, _BLOCK // max(per_row, 1)), batch[0] * per_row)


class ScaledDotProductAttention(Function):
    """O = dropout(P) V with P = softmax(S), S = scale * Q K^T (+ a float mask, or -inf where a
    boolean mask or the causal triangle leaves a pair out); returns (O, dropout(P)) when
    ``need_weights``. Batch axes broadcast as in matmul.

    Args (forward): q (..., L, E), k (..., S, E), v (..., S, Ev), optional mask (..., L, S),
    bool or float.

    Gradient: with D = dropout's mask scaled by 1 / (1 - p) (all ones without dropout) and
    gW the upstream gradient of the returned weights (0 when unused),
        dP = (dO V^T + gW) * D
        dS = P * (dP - rowsum(dP * P))
        dQ = scale dS K,   dK = scale dS^T Q,   dV = (P * D)^T dO,   dmask = dS (float mask),
    each summed over the axes its input was broadcast along. A masked pair has P = 0, hence
    dS = 0: no gradient reaches it, nor any input from a fully masked row.

    Forward and backward run in blocks of rows of the leading batch axis (``_by_rows``): on
    the host each block's products, softmax and dS passes stay in cache, and the blocks go to
    the host threads (a ViT's 4-D batched products were one one-thread call).
    """

    def __init__(self, scale, dropout_p, causal, need_weights, mask_shape=None):
        self.scale, self.p = scale, dropout_p
        self.causal, self.need_weights, self.mask_shape = causal, need_weights, mask_shape

    def forward(self, q, k, v, mask=None):
        xp = backend.xp_of(q)
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        L, S, nd = q.shape[-2], k.shape[-2], len(batch) + 2
        P = xp.empty(batch + (L, S), q.dtype)
        out = xp.empty(batch + (L, v.shape[-1]), q.dtype)
        keep = None
        if self.p > 0:
            u = default_generator(backend.device_of(q)).uniform(P.shape, P.dtype)
            keep = xp.where(u >= self.p, P.dtype.type(1.0 / (1.0 - self.p)), P.dtype.type(0))
        tri = xp.tri(L, S, dtype=bool) if self.causal else None

        def rows(lo, hi):
            qs, ks = _lead(q, lo, hi, nd), _lead(k, lo, hi, nd)
            if q.dtype == np.float16:  # scores and softmax in float32, as PyTorch accumulates
                s = kernels.matmul(qs.astype(np.float32), _swap(ks).astype(np.float32))
            else:
                s = kernels.matmul(qs, _swap(ks))                       # (rows, ..., L, S)
            s *= self.scale
            m = _lead(mask, lo, hi, nd)
            if m is not None:
                if m.dtype.kind == "b":
                    s = xp.where(m, s, -math.inf)
                else:
                    s += m                    # the mask broadcasts to s's shape (checked)
            if tri is not None:
                s = xp.where(tri, s, -math.inf)
            Ps = P[lo:hi] if batch else P
            Ps[...] = _masked_softmax(xp, s)
            if keep is not None:
                Ps = Ps * _lead(keep, lo, hi, nd)
            (out[lo:hi] if batch else out)[...] = kernels.matmul(Ps, _lead(v, lo, hi, nd))

        _by_rows(xp, rows, batch, P[:1].size if batch else P.size)
        self.save_for_backward(q, k, v, P, keep)
        return (out, P if keep is None else P * keep) if self.need_weights else out

    def backward(self, gO, gW=None):
        q, k, v, P, keep = self.saved
        xp = backend.xp_of(P)
        needs = self.needs_input_grad
        batch, nd = P.shape[:-2], P.ndim
        need_s = needs[0] or needs[1] or (len(needs) > 3 and needs[3])
        need_m = len(needs) > 3 and needs[3]
        full = {i: xp.empty(batch + a.shape[-2:], a.dtype)
                for i, a in enumerate((q, k, v)) if needs[i]}
        dS_all = xp.empty_like(P) if need_m else None

        def rows(lo, hi):
            part = (lambda a: a[lo:hi]) if batch else (lambda a: a)
            Ps, gOs, kp = part(P), _lead(gO, lo, hi, nd), _lead(keep, lo, hi, nd)
            if needs[2]:
                Pd = Ps if kp is None else Ps * kp
                part(full[2])[...] = kernels.matmul(_swap(Pd), gOs)
            if not need_s:
                return
            dS = kernels.matmul(gOs, _swap(_lead(v, lo, hi, nd)))          # dP
            if dS.shape != Ps.shape:
                dS = xp.broadcast_to(dS, Ps.shape).copy()
            if gW is not None:
                dS += _lead(gW, lo, hi, nd)
            if kp is not None:
                dS *= kp
            dS -= (dS * Ps).sum(axis=-1, keepdims=True)
            dS *= Ps
            for i, other, a in ((0, k, dS), (1, q, _swap(dS))):
                if needs[i]:
                    g = part(full[i])
                    g[...] = kernels.matmul(a, _lead(other, lo, hi, nd))
                    g *= self.scale
            if need_m:
                part(dS_all)[...] = dS

        _by_rows(xp, rows, batch, P[:1].size if batch else P.size)
        gq, gk, gv = (sum_to(full[i], a.shape) if needs[i] else None
                      for i, a in enumerate((q, k, v)))
        if len(needs) == 3:
            return gq, gk, gv
        return gq, gk, gv, sum_to(dS_all, self.mask_shape) if need_m else None


def check_mask(op, name, mask, query):
    """A mask argument of ``op`` (not None): a Tensor on the query's device, bool or of the
    query's dtype (TypeError / ValueError otherwise). Its shape is the caller's to check."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{op}: '{name}' must be a Tensor or None, got {type_name(mask)}")
    if mask.device != query.device:
        raise ValueError(f"{op}: '{name}' is on {mask.device}, 'query' on {query.device}; "
                         f"move it with .to({str(query.device)!r})")
    if mask.dtype.kind != "b" and mask.dtype != query.dtype:
        raise TypeError(f"{op}: '{name}' must be a bool tensor or have the query's dtype "
                        f"{query.dtype}, got {mask.dtype}")


def _check(query, key, value, attn_mask, dropout_p, is_causal, scale):
    """Validate the arguments; return (scale, dropout_p, is_causal) as Python values."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_float(_OP, name, t)
        if t.ndim < 2:
            raise ValueError(f"{_OP}: '{name}' must have at least 2 dimensions (..., seq, "
                             f"features), got shape {t.shape}")
        if t.dtype != query.dtype:
            raise TypeError(f"{_OP}: '{name}' has dtype {t.dtype}, 'query' {query.dtype}; "
                            "all three must have the same dtype")
        if t.device != query.device:
            raise ValueError(f"{_OP}: '{name}' is on {t.device}, 'query' on {query.device}")
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(f"{_OP}: 'key' must have the embedding size E={query.shape[-1]} of "
                         f"'query' in its last dimension, got key {key.shape} (query "
                         f"{query.shape})")
    if value.shape[-2] != key.shape[-2]:
        raise ValueError(f"{_OP}: 'value' must have the source length S={key.shape[-2]} of "
                         f"'key' in its second-to-last dimension, got value {value.shape} "
                         f"(key {key.shape})")
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        np.broadcast_shapes(batch, value.shape[:-2])
    except ValueError:
        raise ValueError(f"{_OP}: the batch dimensions of query {query.shape}, key {key.shape} "
                         f"and value {value.shape} cannot be broadcast together") from None
    weights = batch + (query.shape[-2], key.shape[-2])
    if attn_mask is not None:
        check_mask(_OP, "attn_mask", attn_mask, query)
        try:
            ok = np.broadcast_shapes(attn_mask.shape, weights) == weights
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{_OP}: 'attn_mask' of shape {attn_mask.shape} must broadcast to "
                             f"the attention weights' shape {weights} (..., L, S)")
    dropout_p = check_number(_OP, "dropout_p", dropout_p, 0.0, 1.0, open_max=True)
    is_causal = check_bool(_OP, "is_causal", is_causal)
    if is_causal and attn_mask is not None:
        raise ValueError(f"{_OP}: give either 'attn_mask' or is_causal=True, not both (a "
                         "causal boolean mask can be passed as attn_mask)")
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    else:
        scale = check_number(_OP, "scale", scale)
        if not math.isfinite(scale):
            raise ValueError(f"{_OP}: 'scale' must be finite, got {scale!r}")
    return scale, dropout_p, is_causal


def scaled_dot_product_attention_with_weights(query, key, value, attn_mask=None,
                                              dropout_p=0.0, is_causal=False, scale=None):
    """``scaled_dot_product_attention`` that also returns the attention weights.

    Returns:
        (output (..., L, Ev), weights (..., L, S)): the weights are the ones the values were
        averaged with, dropout included (as PyTorch's MultiheadAttention returns them); both
        are differentiable.
    """
    scale, p, causal = _check(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return _call(query, key, value, attn_mask, p, causal, scale, True)


def _call(query, key, value, attn_mask, p, causal, scale, need_weights):
    if attn_mask is None:
        return ScaledDotProductAttention(scale, p, causal, need_weights)(query, key, value)
    fn = ScaledDotProductAttention(scale, p, causal, need_weights, attn_mask.shape)
    return fn(query, key, value, attn_mask)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None):
    """softmax(query key^T * scale + mask) value, with dropout on the attention weights.

    Args:
        query: (..., L, E) float tensor.
        key: (..., S, E), the same dtype and device.
        value: (..., S, Ev). The batch axes (...) of the three broadcast together.
        attn_mask: None, or a tensor broadcastable to the weights' shape (..., L, S): bool
            (True = the pair takes part) or of the query's dtype (added to the scores; it gets
            a gradient when it requires one).
        dropout_p: probability in [0, 1) of dropping an attention weight (the rest scaled by
            1 / (1 - p)); applied whenever it is > 0, as in PyTorch (pass 0.0 in eval).
        is_causal: query i attends to keys 0..i only; not together with ``attn_mask``.
        scale: factor of the scores, 1 / sqrt(E) when None.

    Returns:
        (..., L, Ev) tensor with the query's dtype. A query whose keys are all masked gets a
        zero row (see the module docstring).

    Gradient: see ``ScaledDotProductAttention``.
    """
    scale, p, causal = _check(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return _call(query, key, value, attn_mask, p, causal, scale, False)
