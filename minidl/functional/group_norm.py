"""Layer and group normalization (PyTorch semantics; instance norm is group norm with one channel
per group). Each normalizes rows of values by the row's own mean and biased variance, then
applies an optional elementwise affine map.

The normalization is batch norm's training-mode op (``normalization.BatchNormTrain``, without
running statistics) on the input viewed as (1, R, n): batch norm normalizes each channel over
every other axis, so the R rows become its channels. Its closed-form backward, per row of n
values with xhat = (x - mean) / sqrt(var + eps),
    gx = (gy - mean(gy) - xhat * mean(gy * xhat)) / sqrt(var + eps),
thus serves all of them (and the fused GPU kernels with it). The affine map is elementwise
ops (mul, add) whose gradients autograd composes: per element of ``normalized_shape`` for layer
norm, per channel for group norm.

Reference: Ba et al., Layer Normalization, 2016; Wu & He, Group Normalization, 2018;
Ulyanov et al., Instance Normalization: The Missing Ingredient for Fast Stylization, 2016.
"""
from __future__ import annotations

import numpy as np

from .. import backend, kernels
from .._checks import check_int, check_number
from ..autograd import Function
from ..tensor import Tensor
from ._utils import blockwise, check_float, check_shape_arg, type_name
from .elementwise import add, mul
from .normalization import BatchNormTrain
from .shape import reshape


def _normalize_rows(x, R, eps):
    """x normalized over each of its R rows of n = x.numel() / R consecutive values (C order),
    shaped like x."""
    if x.numel() == 0:                    # nothing to normalize; an empty result, as PyTorch
        return mul(x, 1.0)
    rows = reshape(x, (1, R, x.numel() // R))               # the rows as batch norm's channels
    return reshape(BatchNormTrain(None, None, 0.0, eps)(rows), x.shape)


_BLOCK = 1 << 17      # values per block of rows in LayerNormRows (its temporaries in cache)


class LayerNormRows(Function):
    """Layer norm of the R rows of n values of x (viewed as (R, n)) with the affine map fused:
    y = xhat * w + b, xhat = (x - mean) / sqrt(var + eps), mean and biased var per row; w and b
    (n,), each optional (``has_w``, ``has_b`` say which of them follow x in the inputs).

    Gradient (per row, means over its n values; g = gy * w, or gy without w):
        gx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps),
        gw = sum over rows of gy * xhat,   gb = sum over rows of gy.

    On the host the rows go in blocks of about ``_BLOCK`` values, shared out among the host
    threads, each block's ~7 passes in cache: as batch norm plus an elementwise mul and add
    (four ops, each a pass through memory on one core) layer norm was 15% of a ViT step.
    """

    def __init__(self, n, eps, has_w, has_b):
        self.n, self.eps, self.has_w, self.has_b = n, eps, has_w, has_b

    def forward(self, x, *params):
        xp = backend.xp_of(x)
        self.x_shape = x.shape
        self.p_shape = params[0].shape if params else None                 # normalized_shape
        w = params[0].reshape(self.n) if self.has_w else None
        b = params[-1].reshape(self.n) if self.has_b else None
        x2 = x.reshape(-1, self.n)                                       # (R, n)
        xhat, y = xp.empty_like(x2), xp.empty_like(x2)
        invstd = xp.empty((x2.shape[0], 1), x.dtype)
        mean_of = xp.full((self.n, 1), 1.0 / self.n, x.dtype)    # row means as BLAS products
        mm = _product(xp)

        def block(lo, hi):
            xs, xh, ys, inv = x2[lo:hi], xhat[lo:hi], y[lo:hi], invstd[lo:hi]
            xp.subtract(xs, mm(xs, mean_of), out=xh)
            xp.multiply(xh, xh, out=ys)                                  # ys: scratch
            xp.add(mm(ys, mean_of), self.eps, out=inv)                   # biased var + eps
            xp.sqrt(inv, out=inv)
            xp.reciprocal(inv, out=inv)
            xh *= inv
            if w is None:
                ys[...] = xh
            else:
                xp.multiply(xh, w, out=ys)
            if b is not None:
                ys += b

        blockwise(xp, block, x2.shape[0], max(1, _BLOCK // self.n), x2.size)
        self.save_for_backward(xhat, invstd, w)
        return y.reshape(x.shape)

    def backward(self, gy):
        xhat, invstd, w = self.saved
        xp = backend.xp_of(xhat)
        needs = self.needs_input_grad
        need_w, need_b = self.has_w and needs[1], self.has_b and needs[-1]
        g2 = gy.reshape(xhat.shape)
        gx = xp.empty_like(g2) if needs[0] else None
        sums = {}

        mean_of = xp.full((self.n, 1), 1.0 / self.n, xhat.dtype)
        ones = xp.ones((1, xhat.shape[0]), xhat.dtype)
        mm = _product(xp)

        def block(lo, hi):
            g, xh = g2[lo:hi], xhat[lo:hi]
            gxh = g * xh
            sums[lo] = (mm(ones[:, :hi - lo], gxh) if need_w else None,  # column sums, BLAS
                        mm(ones[:, :hi - lo], g) if need_b else None)
            if gx is None:
                return
            if w is not None:
                gxh *= w                                                 # g * w * xhat
                g = g * w
            out = gx[lo:hi]
            xp.multiply(xh, mm(gxh, mean_of), out=out)
            xp.subtract(g, out, out=out)
            out -= mm(g, mean_of)
            out *= invstd[lo:hi]

        blockwise(xp, block, xhat.shape[0], max(1, _BLOCK // self.n), xhat.size)
        parts = [sums[lo] for lo in sorted(sums)]
        gw = gb = None
        if need_w:
            gw = _total([p[0] for p in parts], xhat, self.n).reshape(self.p_shape)
        if need_b:
            gb = _total([p[1] for p in parts], xhat, self.n).reshape(self.p_shape)
        if gx is not None:
            gx = gx.reshape(self.x_shape)
        return (gx,) + ((gw,) if self.has_w else ()) + ((gb,) if self.has_b else ())


def _product(xp):
    """The matrix product of LayerNormRows: NumPy's in a host block (already on one of the
    host threads), ``kernels.matmul`` on a GPU (which a CUDA-graph capture needs: CuPy refuses
    its own cuBLAS calls while capturing)."""
    return np.matmul if xp is np else kernels.matmul


def _total(partials, like, n):
    """Sum of the blocks' (n,) partial sums, added in block order (no blocks: zeros)."""
    if not partials:
        return backend.xp_of(like).zeros(n, like.dtype)
    total = partials[0]
    for p in partials[1:]:
        total += p
    return total


def _affine(y, weight, bias, shape):
    """y * weight + bias, the parameters viewed as ``shape`` to broadcast against y."""
    if weight is not None:
        y = mul(y, reshape(weight, shape))
    if bias is not None:
        y = add(y, reshape(bias, shape))
    return y


def _check_param(op, name, v, shape, x):
    """None, or a float Tensor of ``shape`` with x's dtype and device."""
    if v is None:
        return
    if not isinstance(v, Tensor):
        raise TypeError(f"{op}: '{name}' must be a Tensor or None, got {type_name(v)}")
    check_float(op, name, v)
    if v.shape != shape:
        raise ValueError(f"{op}: '{name}' must have shape {shape}, got {v.shape} "
                         f"(input {x.shape})")
    if v.dtype != x.dtype:
        raise TypeError(f"{op}: '{name}' has dtype {v.dtype}, the input {x.dtype}")
    if v.device != x.device:
        raise ValueError(f"{op}: '{name}' is on {v.device}, the input on {x.device}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the trailing dimensions ``normalized_shape`` of ``input``.

    y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased var taken over the
    last D = len(normalized_shape) dimensions, separately for every index of the others.

    Args:
        input: (*, *normalized_shape).
        normalized_shape: int or tuple of ints, the trailing shape to normalize over.
        weight, bias: optional Tensors of shape ``normalized_shape`` (either may be given alone).
        eps: added to the variance inside the square root.

    Returns:
        Tensor shaped like ``input``.

    Gradient: see the module docstring (the rows are the normalized_shape blocks).
    """
    op = "layer_norm"
    check_float(op, "input", input)
    shape = check_shape_arg(op, normalized_shape, "normalized_shape")
    if not shape or min(shape) < 0:
        raise ValueError(f"{op}: 'normalized_shape' must be a non-empty tuple of non-negative "
                         f"ints, got {normalized_shape!r}")
    D = len(shape)
    if input.ndim < D or input.shape[input.ndim - D:] != shape:
        want = "(*, " + ", ".join(str(s) for s in shape) + ")"
        raise ValueError(f"{op}: expected an input of shape {want} for normalized_shape="
                         f"{shape}, got {input.shape}")
    _check_param(op, "weight", weight, shape, input)
    _check_param(op, "bias", bias, shape, input)
    eps = check_number(op, "eps", eps, 0, open_min=True)
    n = 1
    for s in shape:
        n *= s
    if input.numel() == 0:
        return _affine(_normalize_rows(input, 0, eps), weight, bias, shape)
    params = [p for p in (weight, bias) if p is not None]
    return LayerNormRows(n, eps, weight is not None, bias is not None)(input, *params)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalization: the C channels of an (N, C, *) input split into ``num_groups``
    groups of C / num_groups consecutive channels; each sample's group is normalized by its
    own mean and biased variance, then scaled and shifted per channel.

    Args:
        input: (N, C, *), C divisible by ``num_groups``.
        num_groups: positive int (num_groups = C: instance norm; 1: layer norm over (C, *)).
        weight, bias: optional (C,) Tensors.
        eps: added to the variance inside the square root.

    Returns:
        Tensor shaped like ``input``.

    Gradient: see the module docstring (the rows are the (sample, group) blocks).
    """
    op = "group_norm"
    check_float(op, "input", input)
    if input.ndim < 2:
        raise ValueError(f"{op}: 'input' must have at least 2 dimensions (N, C, *), got shape "
                         f"{input.shape}")
    num_groups = check_int(op, "num_groups", num_groups, 1)
    N, C = input.shape[:2]
    if C % num_groups:
        raise ValueError(f"{op}: the input's {C} channels are not divisible by num_groups="
                         f"{num_groups} (input {input.shape})")
    _check_param(op, "weight", weight, (C,), input)
    _check_param(op, "bias", bias, (C,), input)
    eps = check_number(op, "eps", eps, 0, open_min=True)
    y = _normalize_rows(input, N * num_groups, eps)
    return _affine(y, weight, bias, (C,) + (1,) * (input.ndim - 2))
