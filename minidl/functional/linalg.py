"""Matrix products: matmul (batched, broadcasting, 1-D operands as in NumPy) and linear."""
from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..autograd import Function
from ._utils import check_float, check_tensor, sum_to


class MatMul(Function):
    """y = a @ b with NumPy's rules (leading axes broadcast; 1-D operands act as a row/column).

    Gradient (for 2-D and batched operands): ga = sum_to(gy @ b^T, a.shape),
    gb = sum_to(a^T @ gy, b.shape), ^T swapping the last two axes; 1-D operands are first
    lifted to a row (a) or column (b) and the result squeezed back.
    """

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return kernels.matmul(a, b)

    def backward(self, gy):
        a, b = self.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            gy = gy[..., None]          # restore the column axis of b2
        if a.ndim == 1:
            gy = gy[..., None, :]       # restore the row axis of a2
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(kernels.matmul(gy, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(kernels.matmul(a2.swapaxes(-1, -2), gy), b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x @ W^T + b for x of shape (..., in), W (out, in), b (out,).

    Gradient: gx = gy @ W, gW = gy^T x (summed over all leading axes), gb = sum of gy over
    the leading axes.

    The leading axes are flattened first, so every product is one 2-D GEMM (x as (rows, in)):
    ``kernels.matmul`` splits 2-D products over the host threads, while a batched (3-D) one
    ran as a single one-thread call (a ViT step's linears 2x slower).
    """

    def forward(self, x, W, b=None):
        rows = math.prod(x.shape[:-1])
        x2 = x.reshape(rows, x.shape[-1])                                # (rows, in)
        self.save_for_backward(x2, W)
        self.x_shape = x.shape
        y = kernels.matmul(x2, W.T)                                      # (rows, out)
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + (W.shape[0],))

    def backward(self, gy):
        x2, W = self.saved
        g2 = gy.reshape(x2.shape[0], gy.shape[-1])                       # (rows, out)
        gx = kernels.matmul(g2, W).reshape(self.x_shape) if self.needs_input_grad[0] else None
        gW = kernels.matmul(g2.T, x2) if self.needs_input_grad[1] else None
        gb = g2.sum(axis=0) if len(self.needs_input_grad) > 2 and self.needs_input_grad[2] \
            else None
        return (gx, gW, gb) if len(self.needs_input_grad) > 2 else (gx, gW)


def matmul(input, other):
    """Matrix product with NumPy's batching and broadcasting rules."""
    check_tensor("matmul", "input", input)
    check_tensor("matmul", "other", other)
    a, b = input.shape, other.shape
    if not a or not b:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a} "
                         f"and {b}")
    k_a = a[-1]
    k_b = b[0] if len(b) == 1 else b[-2]
    if k_a != k_b:
        raise ValueError(
            f"matmul: shapes {a} and {b} are not aligned: input's last dimension ({k_a}) must "
            f"equal other's {'only' if len(b) == 1 else 'second-to-last'} dimension ({k_b})")
    try:
        np.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions {a[:-2]} and {b[:-2]} (of shapes {a} and "
                         f"{b}) cannot be broadcast together") from None
    if input.dtype != other.dtype:
        raise TypeError(f"matmul: operands must have the same dtype, got {input.dtype} and "
                        f"{other.dtype}")
    return MatMul()(input, other)


def linear(input, weight, bias=None):
    """y = input @ weight^T + bias, for input (..., in), weight (out, in), bias (out,)."""
    check_float("linear", "input", input)
    check_float("linear", "weight", weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: 'weight' must be 2-D (out_features, in_features), got "
                         f"shape {weight.shape}")
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input's last dimension must be in_features={weight.shape[1]}"
                         f" (weight {weight.shape}), got input shape {input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            check_float("linear", name, t)
            raise TypeError(f"linear: input is {input.dtype} but {name} is {t.dtype} (no "
                            "mixing, as in PyTorch); convert one, e.g. with model.double() or "
                            "x.float()")
    if bias is not None:
        check_float("linear", "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: 'bias' must have shape ({weight.shape[0]},), got "
                             f"{bias.shape}")
        return Linear()(input, weight, bias)
    return Linear()(input, weight)
