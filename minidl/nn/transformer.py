"""Transformer encoder layers with PyTorch's submodule names, so state_dicts share its keys.

Reference: Vaswani et al., Attention Is All You Need, 2017; Xiong et al., On Layer
Normalization in the Transformer Architecture, 2020 (the pre-norm variant, ``norm_first``).
"""
from __future__ import annotations

import copy

import numpy as np

from .. import functional as F
from .._checks import check_bool, check_int, check_number
from .attention import MultiheadAttention
from .containers import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention then a two-layer feed-forward network, each with a residual connection
    and a LayerNorm.

    Post-norm (default): x = norm1(x + sa(x)); x = norm2(x + ff(x)).
    Pre-norm (``norm_first``): x = x + sa(norm1(x)); x = x + ff(norm2(x)).
    With sa(x) = dropout1(self_attn(x, x, x)) and
    ff(x) = dropout2(linear2(dropout(activation(linear1(x))))).

    Args:
        d_model: features E of the input; divisible by ``nhead``.
        nhead: attention heads.
        dim_feedforward: hidden width of the feed-forward network.
        dropout: dropout probability (attention weights, feed-forward, both residual branches).
        activation: "relu", "gelu" (exact) or a callable (a Module becomes a submodule).
        layer_norm_eps: LayerNorm's eps.
        batch_first: inputs (N, L, E) instead of (L, N, E).
        norm_first: pre-norm instead of post-norm.
        bias: biases in the linear layers, the attention and the LayerNorms.
        dtype: parameter dtype.

    Shapes: src (L, N, E), (N, L, E) with batch_first, or (L, E) -> the same shape.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 dtype=np.float32):
        super().__init__()
        op = "TransformerEncoderLayer"
        d_model = check_int(op, "d_model", d_model, 1)
        nhead = check_int(op, "nhead", nhead, 1)
        if d_model % nhead:
            raise ValueError(f"{op}: 'd_model' ({d_model}) must be divisible by 'nhead' "
                             f"({nhead})")
        dim_feedforward = check_int(op, "dim_feedforward", dim_feedforward, 1)
        dropout = check_number(op, "dropout", dropout, 0.0, 1.0, open_max=True)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"{op}: 'activation' must be 'relu', 'gelu' or a callable, got "
                                 f"{activation!r}")
            activation = _ACTIVATIONS[activation]
        elif not callable(activation):
            raise TypeError(f"{op}: 'activation' must be 'relu', 'gelu' or a callable, got "
                            f"{type(activation).__name__}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = check_bool(op, "norm_first", norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.batch_first = self.self_attn.batch_first

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        y = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(y)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """Encode ``src``; the masks are MultiheadAttention's ``attn_mask`` and
        ``key_padding_mask`` (bool True = left out, or float added to the scores).
        ``is_causal`` (None means False) is MultiheadAttention's: a hint when ``src_mask``
        is given, else the causal triangle itself (PyTorch raises an error there)."""
        is_causal = False if is_causal is None else check_bool(
            "TransformerEncoderLayer", "is_causal", is_causal)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class TransformerEncoder(Module):
    """A stack of ``num_layers`` deep copies of ``encoder_layer`` (``layers``), then an
    optional ``norm`` (e.g. the final LayerNorm of a pre-norm stack).

    The copies start with equal weights, as in PyTorch; re-initialize them for independent
    ones. Shapes as the layer's.
    """

    def __init__(self, encoder_layer, num_layers, norm=None):
        super().__init__()
        op = "TransformerEncoder"
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"{op}: 'encoder_layer' must be a Module, got "
                            f"{type(encoder_layer).__name__}")
        if norm is not None and not isinstance(norm, Module):
            raise TypeError(f"{op}: 'norm' must be a Module or None, got {type(norm).__name__}")
        self.num_layers = check_int(op, "num_layers", num_layers, 1)
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """Run every layer with the same masks (see TransformerEncoderLayer.forward); then
        ``norm``. ``is_causal`` None means False."""
        causal = False if is_causal is None else check_bool("TransformerEncoder", "is_causal",
                                                            is_causal)
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=causal)
        return x if self.norm is None else self.norm(x)
