"""Batch normalization (PyTorch semantics), forward and closed-form backward in one Function.

Statistics are per channel (axis 1) over every other axis: (N, C), (N, C, L) and (N, C, H, W)
all work. Training normalizes with the biased batch variance and moves the running variance
towards the unbiased one; eps appears once, inside the square root.

Reference: Ioffe & Szegedy, Batch Normalization: Accelerating Deep Network Training by Reducing
Internal Covariate Shift, 2015.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_number
from ..autograd import Function
from ..kernels import cuda_batchnorm, threads
from ..tensor import Tensor
from ._utils import check_float, relu_mask
from .activation import Hardtanh
from .elementwise import band_grad


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, ndim):
    """(C,) -> (1, C, 1, ...) for broadcasting against an ndim-D input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _rows(x):
    """(N, C, ...) -> (C, N*...) channel rows; free for the channel-major memory conv2d
    produces (a copy otherwise), so per-channel sums run along contiguous rows."""
    return x.swapaxes(0, 1).reshape(x.shape[1], -1)


def _unrows(r, shape):
    """Inverse of ``_rows``: an (N, C, ...) view of the (C, N*...) rows."""
    return r.reshape((shape[1], shape[0]) + tuple(shape[2:])).swapaxes(0, 1)


def _blocks(n):
    """A block length that divides a row of n values (a power of two from 4096 down to 256), or
    None: the rows' float32 partial sums run over blocks and are added up in float64."""
    for k in (4096, 2048, 1024, 512, 256):
        if n % k == 0 and n > k:
            return k
    return None


def _dot_rows(a, b):
    """Per-row dot products of two (C, M) arrays, returned in their dtype, accumulated in
    float64 across blocks of up to 4096 values (each block a BLAS dot, in float32 for float32
    input), without a (C, M) temporary. A plain float32 running sum over the ~10^5 values of a
    channel loses precision, most where the terms cancel (the weight gradient sum(gy * xhat)):
    einsum was 3e-6 off in the variance and the weight gradient of a CIFAR batch, this is 7e-8
    and 3e-7, at einsum's speed (float64 throughout: 2e-8 and 4e-8, at 2.5x the time).
    PyTorch's CPU kernels and ``kernels/cuda_batchnorm`` accumulate in double."""
    part = _block_sums(a, b)
    if part is None:
        if backend.xp_of(a) is np:
            return np.einsum("ij,ij->i", a, b, dtype=np.float64).astype(a.dtype, copy=False)
        return backend.xp_of(a).matmul(a[:, None, :].astype(np.float64),
                                       b[:, :, None])[:, 0, 0].astype(a.dtype)
    return part.sum(axis=1, dtype=np.float64).astype(a.dtype)


def _block_sums(a, b=None):
    """(C, M/k) sums of a * b (of a, without b) over the blocks of k values (``_blocks``) of
    each row of the (C, M) arrays, each a batched BLAS product in a's dtype; None when no
    block length divides M."""
    xp = backend.xp_of(a)
    C, n = a.shape
    k = _blocks(n)
    if k is None:
        return None
    right = xp.ones((k, 1), a.dtype) if b is None else b.reshape(C, n // k, k, 1)
    return xp.matmul(a.reshape(C, n // k, 1, k), right)[:, :, 0, 0]


def _mean_rows(a):
    """Per-row means of a (C, M) array in its dtype: float32 sums of blocks of up to 4096
    values (a batched BLAS product with ones) added up in float64. As close to the exact mean
    as NumPy's pairwise float32 mean (1e-7 on a CIFAR batch's channels), in 40-65% less time
    here."""
    part = _block_sums(a)
    if part is None:
        return a.mean(axis=1)
    return (part.sum(axis=1, dtype=np.float64) * (1.0 / a.shape[1])).astype(a.dtype)


def _sum_rows(a):
    """Per-row sums of a (C, M) array accumulated in float64, in its dtype (the bias gradient
    sum(gy) cancels the most: float32 partial sums left 5-8e-7 of it, float64 4e-8)."""
    return a.sum(axis=1, dtype=np.float64).astype(a.dtype, copy=False)


class BatchNormTrain(Function):
    """y = xhat * w + b, xhat = (x - mu) / sqrt(var + eps), with mu and the biased var taken
    over the n = N*H*W values of each channel. Updates the running statistics in place:
    running_mean <- (1 - m) running_mean + m mu, running_var <- (1 - m) running_var + m var*n/(n-1).
    With ``relu``, y = max(xhat * w + b, 0), computed in the same buffer (one pass less); with
    ``top`` as well (host only), y = min(max(xhat * w + b, 0), top) (relu6: top = 6).

    Gradient (per channel, sums over the n values; w = 1 without affine; with ``relu`` first
    gy <- gy * [y > 0], with ``top`` gy <- gy * [0 < y < top]):
        gb = sum(gy),  gw = sum(gy * xhat),
        gx = w / sqrt(var + eps) * (gy - gb / n - xhat * gw / n)
    computed from the centred input x - mu kept from forward (xhat is never stored: the
    forward writes y straight from it with the scale w / sqrt(var + eps), one pass less).

    On a GPU the same math runs as the four kernels of ``kernels/cuda_batchnorm.py`` (two
    forward, two backward), which keep x and the per-channel mean and invstd instead of xhat.
    """

    def __init__(self, running_mean, running_var, momentum, eps, relu=False, top=None):
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps, self.relu, self.top = momentum, eps, relu, top

    def forward(self, x, w=None, b=None):
        self.fused_gpu = self.top is None and cuda_batchnorm.supports(x, self.running_mean)
        if self.fused_gpu:                # the same math in 2 launches (kernels/cuda_batchnorm)
            y, mean, invstd = cuda_batchnorm.forward(x, w, b, self.running_mean,
                                                     self.running_var, self.momentum, self.eps,
                                                     self.relu)
            self.save_for_backward(x, mean, invstd, w, b)
            return y
        xp = backend.xp_of(x)
        x2 = _rows(x)                                                    # (C, n)
        C, n = x2.shape
        xc, y = xp.empty_like(x2), xp.empty_like(x2)     # xc: centred x, xhat = xc * invstd
        stats = {}

        def part(lo, hi):                                # channels lo..hi-1
            xs, xcs, ys = x2[lo:hi], xc[lo:hi], y[lo:hi]
            mean = _mean_rows(xs)
            xp.subtract(xs, mean[:, None], out=xcs)
            var = _dot_rows(xcs, xcs) * (1.0 / n)                        # biased
            invstd = 1.0 / xp.sqrt(var + self.eps)
            scale = invstd if w is None else invstd * w[lo:hi]
            xp.multiply(xcs, scale[:, None], out=ys)    # one pass for normalize and scale
            if b is not None:
                ys += b[lo:hi, None]
            _activate(xp, ys, self.relu, self.top)
            stats[lo] = mean, var, invstd

        threads.parallel_if_host(xp, part, C, C * n)   # channel blocks, one per host thread
        mean, var, invstd = _joined(xp, stats)
        if self.running_mean is not None:
            m = self.momentum
            self.running_mean[...] = self.running_mean * (1.0 - m) + mean * m
            self.running_var[...] = self.running_var * (1.0 - m) + var * (m * n / (n - 1))
        self.save_for_backward(xc, invstd, w, y if self.relu else None)
        return _unrows(y, x.shape)

    def backward(self, gy):
        if self.fused_gpu:
            x, mean, invstd, w, b = self.saved
            gx, gw, gb = cuda_batchnorm.backward(gy, x, mean, invstd, w, b, self.relu,
                                                 self.needs_input_grad[0])
            return (gx,) + (gw, gb)[:len(self.needs_input_grad) - 1]
        xc, invstd, w, y = self.saved
        xp = backend.xp_of(xc)
        g2 = _rows(gy)
        C, n = g2.shape
        gx = xp.empty_like(g2) if self.needs_input_grad[0] else None
        sums = {}

        def part(lo, hi):                                # channels lo..hi-1
            g, xcs, inv = g2[lo:hi], xc[lo:hi], invstd[lo:hi]
            own = y is not None
            if own:                                     # through the fused ReLU (or ReLU6)
                g = _through(g, y[lo:hi], self.top)
            gb = _sum_rows(g)
            gw = _dot_rows(g, xcs) * inv                                # sum(gy * xhat)
            sums[lo] = gw, gb
            if gx is None:
                return
            # gx = scale * (g - gb/n - xhat * gw/n) = scale*g - k*xc - scale*gb/n
            scale = inv if w is None else inv * w[lo:hi]
            k = scale * inv * gw * (1.0 / n)
            gxs = gx[lo:hi]
            if own:                                     # g is ours: scale it in place
                g *= scale[:, None]
                xp.multiply(xcs, (-k)[:, None], out=gxs)
                gxs += g
            else:
                xp.multiply(g, scale[:, None], out=gxs)
                gxs -= xcs * k[:, None]
            gxs -= (scale * gb * (1.0 / n))[:, None]

        threads.parallel_if_host(xp, part, C, C * n)   # channel blocks, one per host thread
        gw, gb = _joined(xp, sums)
        if gx is not None:
            gx = _unrows(gx, gy.shape)
        return (gx,) + (gw, gb)[:len(self.needs_input_grad) - 1]


def _activate(xp, y, relu, top):
    """The fused activation in place on y: max(y, 0) with ``relu``, then min(y, top) with
    ``top``."""
    if relu:
        xp.maximum(y, 0, out=y)
        if top is not None:
            xp.minimum(y, top, out=y)


def _through(g, y, top):
    """g through the fused activation of output y: where y > 0 (ReLU), or 0 < y < top."""
    if top is None:
        return relu_mask(g, y)
    return band_grad(g, y, 0, top, strict=True)


def _joined(xp, parts):
    """Per-channel vectors from the channel blocks of ``parts`` ({lo: (v1, v2, ...)}), joined
    in channel order: the block's own arrays when there was one (the GPU, or no threads)."""
    blocks = [parts[lo] for lo in sorted(parts)]
    if len(blocks) == 1:
        return blocks[0]
    return tuple(xp.concatenate(vs) for vs in zip(*blocks))


class BatchNormEval(Function):
    """y = x * s + t with s = w / sqrt(running_var + eps) and t = b - running_mean * s: a fixed
    affine map per channel (followed by max(., 0) with ``relu``, and by min(., top) with
    ``top``), in that form as PyTorch's CPU inference kernel computes it. Two passes over x
    (three with the activation), on the host threads in channel blocks for channel-major
    input; x is kept for backward rather than x-hat (recomputed there for gw only).

    Gradient (with ``relu`` first gy <- gy * [y > 0], with ``top`` gy <- gy * [0 < y < top]):
    gx = gy * s,
    gw = sum(gy * (x - running_mean) / sqrt(running_var + eps)), gb = sum(gy) (per channel).
    """

    def __init__(self, running_mean, running_var, eps, relu=False, top=None):
        self.running_mean, self.running_var, self.eps = running_mean, running_var, eps
        self.relu, self.top = relu, top

    def forward(self, x, w=None, b=None):
        xp = backend.xp_of(x)
        mean = self.running_mean.astype(x.dtype, copy=False)           # keep x's dtype
        invstd = 1.0 / xp.sqrt(self.running_var.astype(x.dtype, copy=False) + self.eps)
        scale = invstd if w is None else invstd * w
        shift = -mean * scale if b is None else b - mean * scale
        # channel-major memory (each channel one block): its rows are a free view
        x2 = _rows(x) if xp is np and x.ndim > 2 and x[:, 0].flags.c_contiguous else None
        if x2 is None:                                 # on a GPU, or any other layout
            nd = x.ndim
            y = x * _per_channel(scale, nd)
            y += _per_channel(shift, nd)
            _activate(xp, y, self.relu, self.top)
        else:
            y2 = np.empty_like(x2)

            def part(lo, hi):                          # channels lo..hi-1
                ys = y2[lo:hi]
                np.multiply(x2[lo:hi], scale[lo:hi, None], out=ys)
                ys += shift[lo:hi, None]
                _activate(np, ys, self.relu, self.top)

            threads.parallel(part, x2.shape[0], x2.size)
            y = _unrows(y2, x.shape)
        self.save_for_backward(x, mean, invstd, scale, y if self.relu else None)
        return y

    def backward(self, gy):
        x, mean, invstd, scale, y = self.saved
        if y is not None:                                   # through the fused ReLU (or ReLU6)
            gy = _through(gy, y, self.top)
        axes, nd = _axes(gy), gy.ndim
        needs = self.needs_input_grad
        gx = gy * _per_channel(scale, nd) if needs[0] else None
        gw = gb = None
        if len(needs) > 1 and needs[1]:
            xhat = (x - _per_channel(mean, nd)) * _per_channel(invstd, nd)
            gw = (gy * xhat).sum(axis=axes)
        if len(needs) > 2 and needs[2]:
            gb = gy.sum(axis=axes)
        return (gx, gw, gb)[:len(needs)]


def _check_vector(op, name, v, C, x):
    if v is None:
        return None
    check_float(op, name, v)
    if v.shape != (C,):
        raise ValueError(f"{op}: '{name}' must have shape ({C},) for an input with {C} "
                         f"channels (input {x.shape}), got {v.shape}")
    if v.device != x.device:
        raise ValueError(f"{op}: '{name}' is on {v.device}, the input on {x.device}")
    return v


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False,
                    momentum=0.1, eps=1e-5, max_value=None):
    """``relu(batch_norm(...))`` as one op: same arguments and results as the two in a row,
    one memory pass and one saved array fewer (the pattern of every conv-BN-ReLU). With
    ``max_value`` (a positive number), ``hardtanh(batch_norm(...), 0, max_value)``: 6 for
    MobileNet's relu6. On a GPU that form is the batch-norm kernels and a separate clamp."""
    op = "batch_norm_relu"
    if max_value is not None:
        max_value = check_number(op, "max_value", max_value, 0, open_min=True)
        if check_float(op, "input", input).device.type != "cpu":
            y = _batch_norm(op, input, running_mean, running_var, weight, bias, training,
                            momentum, eps, False)
            return Hardtanh(0.0, max_value)(y)
    return _batch_norm(op, input, running_mean, running_var, weight, bias, training,
                       momentum, eps, True, max_value)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over axis 1 (channels) of an (N, C, ...) input.

    Args:
        input: (N, C), (N, C, L) or (N, C, H, W).
        running_mean, running_var: (C,) Tensors updated in place when training (may be None,
            then training must be True and only batch statistics are used).
        weight, bias: optional (C,) affine parameters.
        training: use batch statistics (and update the running ones); else the running ones.
        momentum: weight of the new batch in the running averages.
        eps: added to the variance inside the square root.

    Returns:
        Tensor shaped like ``input``.
    """
    return _batch_norm("batch_norm", input, running_mean, running_var, weight, bias, training,
                       momentum, eps, False)


def _batch_norm(op, input, running_mean, running_var, weight, bias, training, momentum, eps,
                relu, top=None):
    check_float(op, "input", input)
    if input.ndim < 2:
        raise ValueError(f"{op}: 'input' must have at least 2 dimensions (N, C, ...), got "
                         f"shape {input.shape}")
    C = input.shape[1]
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is not None and not isinstance(v, Tensor):
            raise TypeError(f"{op}: '{name}' must be a Tensor or None, got {type(v).__name__}")
        _check_vector(op, name, v, C, input)
    for name, v in (("weight", weight), ("bias", bias)):
        if _check_vector(op, name, v, C, input) is not None and v.dtype != input.dtype:
            raise TypeError(f"{op}: '{name}' has dtype {v.dtype}, the input {input.dtype}")
    if weight is None and bias is not None:
        raise ValueError(f"{op}: 'bias' without 'weight' is not supported; pass both or neither")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    momentum = check_number(op, "momentum", momentum, 0, 1)
    eps = check_number(op, "eps", eps, 0, open_min=True)
    rm = None if running_mean is None else running_mean.data
    rv = None if running_var is None else running_var.data
    if training:
        if input.numel() // C <= 1:
            raise ValueError(f"{op}: training needs more than 1 value per channel, got input "
                             f"shape {input.shape}")
        fn = BatchNormTrain(rm, rv, momentum, eps, relu, top)
    else:
        if rm is None:
            raise ValueError(f"{op}: eval mode (training=False) needs running_mean and "
                             "running_var")
        fn = BatchNormEval(rm, rv, eps, relu, top)
    return fn(*[t for t in (input, weight, bias) if t is not None])
