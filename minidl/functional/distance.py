"""Norms and distances between vectors: normalize, cosine_similarity, pairwise_distance.

Each is composed from differentiable ops (norm, clamp, div, mul, sum), so its gradient is the
exact derivative of the formula below; clamp's gradient is zero below its bound, so a norm
under ``eps`` passes no gradient back through itself (only through the numerator).
"""
from __future__ import annotations

import numpy as np

from .._checks import check_number
from ..tensor import is_real
from ._utils import check_float, normalize_dim
from .elementwise import add, clamp, div, mul, sub
from .reduction import norm, sum
from .shape import broadcast_to


def _order(op, p):
    if not is_real(p) or not (p >= 0 or p == -np.inf):
        raise ValueError(f"{op}: 'p' must be a number >= 0 or inf, got {p!r}")
    return float(p)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p, eps), the norm taken along ``dim`` (unit vectors along
    ``dim``; a vector of norm under eps is divided by eps)."""
    check_float("normalize", "input", input)
    p, eps = _order("normalize", p), check_number("normalize", "eps", eps, 0, open_min=True)
    d = normalize_dim("normalize", dim, input.ndim)
    if input.ndim == 0:
        return div(input, clamp(norm(input, p), min=eps))
    return div(input, clamp(norm(input, p, d, keepdim=True), min=eps))


def _common(op, x1, x2):
    """x1 and x2 broadcast to one shape (ValueError naming ``op`` if they do not)."""
    check_float(op, "x1", x1)
    check_float(op, "x2", x2)
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {x1.shape} and {x2.shape} of 'x1' and 'x2' cannot be "
                         "broadcast together") from None
    return (x if x.shape == shape else broadcast_to(x, shape) for x in (x1, x2))


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum over ``dim`` of (x1 / max(||x1||_2, eps)) * (x2 / max(||x2||_2, eps)), with x1 and
    x2 broadcast together first (PyTorch's formula: each vector normalized, then the dot
    product; the dim is removed). The gradient is this formula's: where a norm is below
    ``eps`` it differs from PyTorch's, which lets the gradient through its clamp."""
    x1, x2 = _common("cosine_similarity", x1, x2)
    eps = check_number("cosine_similarity", "eps", eps, 0, open_min=True)
    d = normalize_dim("cosine_similarity", dim, x1.ndim)
    if x1.ndim == 0:
        raise ValueError("cosine_similarity: 'x1' and 'x2' are 0-d; they need a dim to take "
                         "the dot product along")
    u1 = div(x1, clamp(norm(x1, 2, d, keepdim=True), min=eps))
    u2 = div(x2, clamp(norm(x2, 2, d, keepdim=True), min=eps))
    return sum(mul(u1, u2), d)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p along the last dim (x1 and x2 broadcast together); ``eps`` keeps
    the norm's gradient finite when x1 = x2."""
    check_float("pairwise_distance", "x1", x1)
    check_float("pairwise_distance", "x2", x2)
    p = _order("pairwise_distance", p)
    eps = check_number("pairwise_distance", "eps", eps)
    x1, x2 = _common("pairwise_distance", x1, x2)
    return norm(add(sub(x1, x2), eps), p, -1, keepdim=bool(keepdim))
