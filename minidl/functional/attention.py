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
from ._utils import check_float, sum_to, type_name

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
    """

    def __init__(self, scale, dropout_p, causal, need_weights, mask_shape=None):
        self.scale, self.p = scale, dropout_p
        self.causal, self.need_weights, self.mask_shape = causal, need_weights, mask_shape

    def forward(self, q, k, v, mask=None):
        xp = backend.xp_of(q)
        if q.dtype == np.float16:     # scores and softmax in float32, as PyTorch accumulates
            s = kernels.matmul(q.astype(np.float32), _swap(k).astype(np.float32))
        else:
            s = kernels.matmul(q, _swap(k))                             # (..., L, S)
        s *= self.scale
        if mask is not None:
            if mask.dtype.kind == "b":
                s = xp.where(mask, s, -math.inf)
            else:
                s += mask                     # the mask broadcasts to s's shape (checked)
        if self.causal:
            s = xp.where(xp.tri(*s.shape[-2:], dtype=bool), s, -math.inf)
        P = _masked_softmax(xp, s).astype(q.dtype, copy=False)
        keep = None
        if self.p > 0:
            u = default_generator(backend.device_of(q)).uniform(P.shape, P.dtype)
            keep = xp.where(u >= self.p, P.dtype.type(1.0 / (1.0 - self.p)), P.dtype.type(0))
        Pd = P if keep is None else P * keep
        self.save_for_backward(q, k, v, P, keep)
        out = kernels.matmul(Pd, v)                                     # (..., L, Ev)
        return (out, Pd) if self.need_weights else out

    def backward(self, gO, gW=None):
        q, k, v, P, keep = self.saved
        needs = self.needs_input_grad
        Pd = P if keep is None else P * keep
        gq = gk = gv = gmask = None
        if needs[2]:
            gv = sum_to(kernels.matmul(_swap(Pd), gO), v.shape)
        if needs[0] or needs[1] or (len(needs) > 3 and needs[3]):
            dP = sum_to(kernels.matmul(gO, _swap(v)), P.shape)
            if gW is not None:
                dP = dP + gW
            if keep is not None:
                dP = dP * keep
            dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
            if needs[0]:
                gq = sum_to(kernels.matmul(dS, k) * self.scale, q.shape)
            if needs[1]:
                gk = sum_to(kernels.matmul(_swap(dS), q) * self.scale, k.shape)
            if len(needs) > 3 and needs[3]:
                gmask = sum_to(dS, self.mask_shape)
        return (gq, gk, gv) if len(needs) == 3 else (gq, gk, gv, gmask)


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
