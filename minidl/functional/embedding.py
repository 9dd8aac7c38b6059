"""Embedding lookup: rows of a weight matrix picked by integer indices, with a weight gradient
that is the same on every run and device.

The weight gradient is a scatter-add (gW[idx[k]] += gy[k]); with atomics on a GPU its sums
would come out in a varying order. Here the indices are sorted (a stable sort), which groups
the gradient rows of each id into one segment, and each segment is summed by a pairwise tree
of fixed shape: ceil(log2 M) passes for M indices, each pass adding, for every row whose rank
in its segment is a multiple of 2s, the row s places further when it lies in the segment. The
segment heads then hold the sums and are written once each into the gradient.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_bool, check_int
from ..autograd import Function
from ._utils import check_float, check_tensor, int64_indices, kept_for_backward


def segment_sum(ids, rows, num_segments, scale_by_count=False):
    """out[v] = sum of rows[k] over the k with ids[k] = v (zero for absent v), deterministic:
    sorted into segments, then summed in order on the host (``np.add.reduceat``) and by a
    pairwise tree on the GPU (see the module docstring).

    Args: ids (M,) integers in [0, num_segments); rows (M, D). Returns (num_segments, D).
    With ``scale_by_count`` each row is first divided by the number of times its id occurs.
    """
    xp = backend.xp_of(rows)
    M = ids.shape[0]
    out = xp.zeros((num_segments + 1, rows.shape[1]), rows.dtype)   # + a spare row
    if M == 0:
        return out[:num_segments]
    if xp is not np:                # CuPy sorts with thrust, which waits for the device
        backend.refuse_in_capture("embedding's backward on the GPU (it sorts the indices)")
    order = xp.argsort(ids, **({"kind": "stable"} if xp is np else {}))   # CuPy's: stable
    s = ids[order]
    G = rows[order]                                   # (M, D), each id's rows together
    start = xp.searchsorted(s, s, side="left")
    end = xp.searchsorted(s, s, side="right")         # one past each row's segment
    if scale_by_count:
        G = G / (end - start).astype(rows.dtype)[:, None]
    rank = xp.arange(M) - start
    if xp is np:            # the host sums each segment in order, in one pass: O(M * D)
        heads = np.flatnonzero(rank == 0)
        out[s[heads]] = np.add.reduceat(G, heads, axis=0)
        return out[:num_segments]
    pos = xp.arange(M)
    zero = rows.dtype.type(0)
    step = 1
    while step < M:
        take = ((rank % (2 * step)) == 0) & (pos + step < end)
        G[:M - step] += xp.where(take[:M - step, None], G[step:], zero)
        step *= 2
    # each segment head holds its sum; every other row goes to the spare row (discarded)
    out[xp.where(rank == 0, s, num_segments)] = G
    return out[:num_segments]


class Embedding(Function):
    """y[..., :] = W[idx[...], :] (idx integer, any shape; W (V, D)).
    Gradient: gW[v] = sum of gy[k] over the positions k with idx[k] = v (divided by the
    number of such k when ``scale_grad_by_freq``), and gW[padding_idx] = 0. Summed without
    atomics, deterministically (``segment_sum``)."""

    def __init__(self, index, padding_idx, scale_grad_by_freq):
        self.index, self.padding_idx = index, padding_idx
        self.scale = scale_grad_by_freq

    def forward(self, W):
        self.W_shape = W.shape
        return W[self.index]

    def backward(self, gy):
        V, D = self.W_shape
        gW = segment_sum(self.index.reshape(-1), gy.reshape(-1, D), V, self.scale)
        if self.padding_idx is not None:
            gW[self.padding_idx] = 0
        return gW


def check_padding_idx(op, padding_idx, num_embeddings):
    """None, or ``padding_idx`` as an index in [0, num_embeddings) (a negative one counts
    from the end, as in PyTorch)."""
    if padding_idx is None:
        return None
    padding_idx = check_int(op, "padding_idx", padding_idx, or_none=True)
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{op}: 'padding_idx' must be within [-{num_embeddings}, "
                         f"{num_embeddings}) (num_embeddings), got {padding_idx}")
    return padding_idx % num_embeddings


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Look up rows of ``weight`` (V, D): out = weight[input], of shape input.shape + (D,).
    ``input`` holds integer indices in [0, V) (on a GPU checked at the next sync). Row
    ``padding_idx`` gets no gradient; ``scale_grad_by_freq`` divides each id's gradient by
    its number of occurrences in ``input``. ``max_norm`` (renormalizing rows in place) and
    ``sparse`` gradients are not supported."""
    check_tensor("embedding", "input", input)
    check_float("embedding", "weight", weight)
    if input.dtype.kind not in "iu":
        raise TypeError(f"embedding: 'input' must hold integer indices, got dtype "
                        f"{input.dtype} (convert with .long())")
    if weight.ndim != 2:
        raise ValueError(f"embedding: 'weight' must be 2-D (num_embeddings, embedding_dim), "
                         f"got shape {weight.shape}")
    if input.device != weight.device:
        raise RuntimeError(f"embedding: 'input' is on {input.device}, 'weight' on "
                           f"{weight.device}")
    if max_norm is not None:
        raise ValueError("embedding: max_norm is not supported (it renormalizes weight rows "
                         "in place); renormalize the weight yourself under no_grad")
    if sparse:
        raise ValueError("embedding: sparse=True is not supported (minidl has no sparse "
                         "tensors)")
    scale_grad_by_freq = check_bool("embedding", "scale_grad_by_freq", scale_grad_by_freq)
    V = weight.shape[0]
    padding_idx = check_padding_idx("embedding", padding_idx, V)
    idx = int64_indices(input.data)
    if idx.size:
        def error(idx=idx):
            lo, hi = int(idx.min()), int(idx.max())
            if 0 <= lo and hi < V:
                return IndexError("embedding: 'input' held an index outside [0, "
                                  f"{V}) in a call since the last synchronization")
            return IndexError(f"embedding: index {lo if lo < 0 else hi} is out of range "
                              f"for a weight of {V} rows (expected 0..{V - 1})")
        # on a GPU the flag is read at the next sync; until then the indices are clamped
        if backend.check_later(((idx < 0) | (idx >= V)).any(), error):
            idx = backend.xp_of(idx).clip(idx, 0, V - 1)
    idx = kept_for_backward(idx, input, weight)
    return Embedding(idx, padding_idx, scale_grad_by_freq)(weight)
