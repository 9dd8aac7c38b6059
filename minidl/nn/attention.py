"""Multi-head attention with PyTorch's parameters, state_dict keys and forward signature.

Reference: Vaswani et al., Attention Is All You Need, 2017 (section 3.2.2).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import check_bool, check_int, check_number
from ..functional.attention import check_mask
from ..functional.attention import scaled_dot_product_attention_with_weights as _attention
from ..tensor import Tensor
from . import init
from .linear import Linear
from .module import Module, Parameter

_OP = "MultiheadAttention"


def _check_mask(name, mask, shapes, query):
    """None, or a mask ``check_mask`` accepts whose shape is one of ``shapes``."""
    if mask is None:
        return
    check_mask(_OP, name, mask, query)
    if mask.shape not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise ValueError(f"{_OP}: '{name}' must have shape {want}, got {mask.shape}")


def _additive(mask, like):
    """A float mask with like's dtype: -inf where a bool mask is True (left out), else 0."""
    if mask.dtype.kind != "b":
        return mask
    return F.masked_fill(like.new_zeros(mask.shape), mask, float("-inf"))


class MultiheadAttention(Module):
    """Multi-head attention: the query, key and value projected to ``num_heads`` heads of
    embed_dim / num_heads features, scaled dot-product attention in each, the heads joined and
    projected back (``out_proj``).

    Args:
        embed_dim: E, the query's (and output's) features; divisible by ``num_heads``.
        num_heads: number of heads H.
        dropout: dropout probability on the attention weights while training.
        bias: add biases to the input and output projections.
        batch_first: inputs (N, L, E) instead of (L, N, E).
        kdim, vdim: features of key and value (embed_dim when None).
        dtype: parameter dtype.

    Parameters (PyTorch's names): ``in_proj_weight`` (3E, E) when kdim = vdim = E, else
    ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim);
    ``in_proj_bias`` (3E,); ``out_proj`` a Linear(E, E). Initialized as PyTorch: Xavier
    uniform projections, zero biases, out_proj.weight as a Linear's.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False,
                 kdim=None, vdim=None, dtype=np.float32):
        super().__init__()
        E = check_int(_OP, "embed_dim", embed_dim, 1)
        H = check_int(_OP, "num_heads", num_heads, 1)
        if E % H:
            raise ValueError(f"{_OP}: 'embed_dim' ({E}) must be divisible by 'num_heads' ({H})")
        self.embed_dim, self.num_heads, self.head_dim = E, H, E // H
        self.kdim = E if kdim is None else check_int(_OP, "kdim", kdim, 1)
        self.vdim = E if vdim is None else check_int(_OP, "vdim", vdim, 1)
        self.dropout = check_number(_OP, "dropout", dropout, 0.0, 1.0, open_max=True)
        self.batch_first = check_bool(_OP, "batch_first", batch_first)
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(np.empty((E, E), dtype))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dtype))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dtype))
            self.register_parameter("in_proj_weight", None)
        if check_bool(_OP, "bias", bias):
            self.in_proj_bias = Parameter(np.zeros(3 * E, dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight,
                  self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        for b in (self.in_proj_bias, self.out_proj.bias):
            if b is not None:
                init.zeros_(b)

    def _check_inputs(self, query, key, value):
        """Validate shapes; return (batched, L, S, N)."""
        for name, t, d in (("query", query, self.embed_dim), ("key", key, self.kdim),
                           ("value", value, self.vdim)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{_OP}: '{name}' must be a Tensor, got {type(t).__name__}")
            if t.ndim not in (2, 3) or t.ndim != query.ndim:
                raise ValueError(f"{_OP}: query, key and value must all be 3-D (batched) or "
                                 f"all 2-D (unbatched), got shapes {query.shape}, {key.shape}, "
                                 f"{value.shape}")
            if t.shape[-1] != d:
                what = {"query": "embed_dim", "key": "kdim", "value": "vdim"}[name]
                raise ValueError(f"{_OP}: '{name}' must have {d} features ({what}) in its last "
                                 f"dimension, got shape {t.shape}")
        batched = query.ndim == 3
        seq = 1 if batched and self.batch_first else 0
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{_OP}: 'key' and 'value' must agree in all but the last "
                             f"dimension, got {key.shape} and {value.shape}")
        N = query.shape[1 - seq] if batched else 1
        if batched and key.shape[1 - seq] != N:
            raise ValueError(f"{_OP}: query and key have batch sizes {N} and "
                             f"{key.shape[1 - seq]} (batch_first={self.batch_first})")
        return batched, query.shape[seq], key.shape[seq], N

    def _project(self, query, key, value):
        """Batch-first q, k, v projected and split into heads: (N, H, L or S, head_dim) each
        (one product with in_proj_weight for self-attention, where all three are one)."""
        b = self.in_proj_bias
        bq, bk, bv = (None,) * 3 if b is None else F.chunk(b, 3)
        if self._qkv_same_embed_dim and query is key and key is value:
            qkv = F.linear(query, self.in_proj_weight, b)                  # (N, L, 3E)
            qkv = F.reshape(qkv, qkv.shape[:2] + (3, self.num_heads, self.head_dim))
            return F.unbind(F.permute(qkv, (2, 0, 3, 1, 4)))            # 3 x (N, H, L, D)
        if self._qkv_same_embed_dim:
            wq, wk, wv = F.chunk(self.in_proj_weight, 3)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        out = []
        for x, w, bias in ((query, wq, bq), (key, wk, bk), (value, wv, bv)):
            y = F.reshape(F.linear(x, w, bias), x.shape[:2] + (self.num_heads, self.head_dim))
            out.append(F.transpose(y, 1, 2))                           # (N, H, seq, D)
        return out

    def _mask(self, attn_mask, key_padding_mask, is_causal, query, N, L, S, batched):
        """The one mask for scaled_dot_product_attention (True / 0 = take part), or None,
        and whether to ask it for the causal triangle instead."""
        H = self.num_heads
        _check_mask("attn_mask", attn_mask,
                    [(L, S), (N * H, L, S)] if batched else [(L, S), (H, L, S)], query)
        _check_mask("key_padding_mask", key_padding_mask, [(N, S)] if batched else [(S,)],
                    query)
        masks = []
        if attn_mask is not None:
            masks.append(attn_mask if attn_mask.ndim == 2
                         else F.reshape(attn_mask, (N, H, L, S)))
        elif is_causal:
            if key_padding_mask is None:
                return None, True
            masks.append(F.ne(F.tril(query.new_ones((L, S))), 1.0))      # True above diagonal
        if key_padding_mask is not None:
            masks.append(F.reshape(key_padding_mask, (N, 1, 1, S)))
        if not masks:
            return None, False
        if len(masks) == 1 and masks[0].dtype.kind == "b":
            return F.eq(masks[0], False), False          # PyTorch's MHA: True = left out
        total = _additive(masks[0], query)
        for m in masks[1:]:
            total = F.add(total, _additive(m, query))
        return total, False

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: (L, N, E), or (N, L, E) with batch_first, or (L, E) unbatched.
            key, value: (S, N, kdim), (S, N, vdim), batch-first or unbatched alike.
            key_padding_mask: (N, S) (or (S,) unbatched): bool, True = the key is ignored, or
                float, added to the scores.
            need_weights: also return the attention weights.
            attn_mask: (L, S) or (N * num_heads, L, S) (or (num_heads, L, S) unbatched):
                bool, True = the pair is left out, or float, added to the scores.
            average_attn_weights: average the returned weights over the heads.
            is_causal: query i attends to keys 0..i only. With ``attn_mask`` given it is a
                hint that the mask is causal (as in PyTorch) and the mask is applied.

        Returns:
            (output shaped like query with E features, weights): weights (N, L, S) averaged,
            or (N, num_heads, L, S) (no N unbatched), those after dropout; None when not
            ``need_weights``. A query whose keys are all masked gets zero weights and a zero
            attention row (so an output of out_proj's bias), not NaN.
        """
        need_weights = check_bool(_OP, "need_weights", need_weights)
        average = check_bool(_OP, "average_attn_weights", average_attn_weights)
        is_causal = check_bool(_OP, "is_causal", is_causal)
        batched, L, S, N = self._check_inputs(query, key, value)
        mask, causal = self._mask(attn_mask, key_padding_mask, is_causal, query, N, L, S,
                                  batched)
        inputs = [query] if query is key and key is value else [query, key, value]
        if not batched:
            inputs = [F.unsqueeze(t, 0) for t in inputs]
        elif not self.batch_first:
            inputs = [F.transpose(t, 0, 1) for t in inputs]               # (N, seq, features)
        q, k, v = self._project(*(inputs * 3 if len(inputs) == 1 else inputs))
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = _attention(q, k, v, mask, p, causal)        # (N, H, L, D)
        else:
            out = F.scaled_dot_product_attention(q, k, v, mask, p, causal)
        out = F.reshape(F.transpose(out, 1, 2), (N, L, self.embed_dim))
        out = self.out_proj(out)
        if not batched:
            out = F.squeeze(out, 0)
        elif not self.batch_first:
            out = F.transpose(out, 0, 1)
        if not need_weights:
            return out, None
        if average:
            weights = F.mean(weights, dim=1)
        return out, weights if batched else F.squeeze(weights, 0)

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")
