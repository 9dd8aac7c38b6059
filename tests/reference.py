"""Slow, obviously-correct loop oracles for the convolution stack (NumPy, float64).

Each loops over output pixels with plain indexing, written straight from the definitions, so
the vectorized ops in minidl are checked against something that shares none of their code.
"""
import math

import numpy as np


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct convolution: y[n, o, oh, ow] = b[o] + sum over the group's c and the kernel."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    OH, OW = _out(H, KH, sh, ph, dh), _out(W, KW, sw, pw, dw)
    Og = O // groups
    y = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            g = o // Og
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0 if b is None else float(b[o])
                    for c in range(Cg):
                        for i in range(KH):
                            for j in range(KW):
                                h = oh * sh - ph + i * dh
                                ww = ow * sw - pw + j * dw
                                if 0 <= h < H and 0 <= ww < W:
                                    acc += w[o, c, i, j] * x[n, g * Cg + c, h, ww]
                    y[n, o, oh, ow] = acc
    return y


def _windows(x, kernel_size, stride, padding):
    """Yield (n, c, oh, ow, list of (h, w, in_bounds)) for every pooling window."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    OH, OW = _out(H, kh, sh, ph, 1), _out(W, kw, sw, pw, 1)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    cells = [(oh * sh - ph + i, ow * sw - pw + j) for i in range(kh)
                             for j in range(kw)]
                    yield n, c, oh, ow, cells, (N, C, OH, OW)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over each window; padding cells count as -inf (never chosen)."""
    stride = kernel_size if stride is None else stride
    out = None
    for n, c, oh, ow, cells, shape in _windows(x, kernel_size, stride, padding):
        if out is None:
            out = np.empty(shape)
        vals = [x[n, c, h, w] for h, w in cells if 0 <= h < x.shape[2] and 0 <= w < x.shape[3]]
        out[n, c, oh, ow] = max(vals)
    return out


def max_pool2d_grad(x, gy, kernel_size, stride=None, padding=0):
    """Gradient of max_pool2d: each window's gy goes to its first maximum (row-major order)."""
    stride = kernel_size if stride is None else stride
    gx = np.zeros_like(x)
    for n, c, oh, ow, cells, _ in _windows(x, kernel_size, stride, padding):
        best = None
        for h, w in cells:
            if 0 <= h < x.shape[2] and 0 <= w < x.shape[3]:
                if best is None or x[n, c, h, w] > x[n, c, best[0], best[1]]:
                    best = (h, w)
        gx[n, c, best[0], best[1]] += gy[n, c, oh, ow]
    return gx


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over each window, padding counted as zeros in the divisor (count_include_pad)."""
    stride = kernel_size if stride is None else stride
    kh, kw = _pair(kernel_size)
    out = None
    for n, c, oh, ow, cells, shape in _windows(x, kernel_size, stride, padding):
        if out is None:
            out = np.empty(shape)
        total = sum(x[n, c, h, w] for h, w in cells
                    if 0 <= h < x.shape[2] and 0 <= w < x.shape[3])
        out[n, c, oh, ow] = total / (kh * kw)
    return out


def adaptive_avg_pool2d(x, output_size):
    """PyTorch's adaptive bins: rows floor(i*H/OH) .. ceil((i+1)*H/OH)."""
    oh_, ow_ = _pair(output_size)
    N, C, H, W = x.shape
    out = np.empty((N, C, oh_, ow_))
    for i in range(oh_):
        h0, h1 = (i * H) // oh_, -(-((i + 1) * H) // oh_)
        for j in range(ow_):
            w0, w1 = (j * W) // ow_, -(-((j + 1) * W) // ow_)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def batch_norm_train(x, weight, bias, eps):
    """Training-mode batch norm, channel by channel, with two-pass statistics.

    Returns (y, batch mean, biased batch variance, unbiased batch variance)."""
    C = x.shape[1]
    y = np.empty_like(x, dtype=np.float64)
    means, var_b, var_u = np.empty(C), np.empty(C), np.empty(C)
    for c in range(C):
        v = x[:, c].astype(np.float64).ravel()
        m = v.sum() / v.size
        sq = ((v - m) ** 2).sum()
        means[c], var_b[c], var_u[c] = m, sq / v.size, sq / (v.size - 1)
        y[:, c] = (x[:, c] - m) / np.sqrt(var_b[c] + eps)
        if weight is not None:
            y[:, c] = y[:, c] * weight[c] + bias[c]
    return y, means, var_b, var_u


def batch_norm_eval(x, running_mean, running_var, weight, bias, eps):
    """Eval-mode batch norm with given statistics."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - running_mean.reshape(shape)) / np.sqrt(running_var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape) + bias.reshape(shape)
    return y


# ---------------------------------------------------------------------------------------------
# pooling with PyTorch's full argument set (dilation, ceil_mode, divisors, indices)

def pool_out_len(size, k, s, p, d=1, ceil_mode=False):
    """PyTorch's documented output length; with ceil_mode the last window must start inside
    the input or the left padding, else it is dropped."""
    exact = (size + 2 * p - d * (k - 1) - 1) / s
    n = (math.ceil(exact) if ceil_mode else math.floor(exact)) + 1
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


def _pool_cells(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Yield (oh, ow, cells, (OH, OW)) for every window: its (h, w) cells in row-major
    kernel order, out-of-input ones included."""
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    H, W = x.shape[2:]
    OH = pool_out_len(H, kh, sh, ph, dh, ceil_mode)
    OW = pool_out_len(W, kw, sw, pw, dw, ceil_mode)
    for oh in range(OH):
        for ow in range(OW):
            yield oh, ow, [(oh * sh - ph + i * dh, ow * sw - pw + j * dw)
                           for i in range(kh) for j in range(kw)], (OH, OW)


def max_pool2d_ex(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(y, indices) of PyTorch's max_pool2d: the maximum over the window's cells inside the
    input and the flat index h * W + w of the first one (row-major), or of the last NaN."""
    stride = kernel_size if stride is None else stride
    N, C, H, W = x.shape
    y = idx = None
    for oh, ow, cells, (OH, OW) in _pool_cells(x, kernel_size, stride, padding, dilation,
                                                ceil_mode):
        if y is None:
            y, idx = np.empty((N, C, OH, OW)), np.empty((N, C, OH, OW), np.int64)
        inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
        for n in range(N):
            for c in range(C):
                best, where = -np.inf, inside[0]
                for h, w in inside:
                    v = x[n, c, h, w]
                    if v > best or np.isnan(v):
                        best, where = v, (h, w)
                y[n, c, oh, ow] = best
                idx[n, c, oh, ow] = where[0] * W + where[1]
    return y, idx


def max_pool2d_ex_grad(x, gy, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode=False):
    """minidl's max_pool2d gradient: each window's gy to its first maximum; a window holding
    NaN passes none."""
    stride = kernel_size if stride is None else stride
    N, C, H, W = x.shape
    gx = np.zeros_like(x)
    for oh, ow, cells, _ in _pool_cells(x, kernel_size, stride, padding, dilation, ceil_mode):
        inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
        for n in range(N):
            for c in range(C):
                vals = [x[n, c, h, w] for h, w in inside]
                if any(np.isnan(vals)):
                    continue
                h, w = inside[vals.index(max(vals))]
                gx[n, c, h, w] += gy[n, c, oh, ow]
    return gx


def avg_pool2d_ex(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):
    """PyTorch's avg_pool2d: the window's sum over cells inside the input, divided by
    divisor_override, or by the number of its cells inside the padded input
    (count_include_pad), or by the number inside the input."""
    stride = kernel_size if stride is None else stride
    (ph, pw) = _pair(padding)
    N, C, H, W = x.shape
    y = None
    for oh, ow, cells, (OH, OW) in _pool_cells(x, kernel_size, stride, padding, 1, ceil_mode):
        if y is None:
            y = np.empty((N, C, OH, OW))
        inside = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
        padded = [(h, w) for h, w in cells if -ph <= h < H + ph and -pw <= w < W + pw]
        if divisor_override is not None:
            div = divisor_override
        else:
            div = len(padded) if count_include_pad else len(inside)
        for n in range(N):
            for c in range(C):
                y[n, c, oh, ow] = sum(x[n, c, h, w] for h, w in inside) / div
    return y


def adaptive_max_pool2d(x, output_size):
    """(y, indices) over PyTorch's adaptive bins (as ``adaptive_avg_pool2d``): the first
    maximum in row-major order, or the last NaN."""
    oh_, ow_ = _pair(output_size)
    N, C, H, W = x.shape
    y, idx = np.empty((N, C, oh_, ow_)), np.empty((N, C, oh_, ow_), np.int64)
    for i in range(oh_):
        h0, h1 = (i * H) // oh_, -(-((i + 1) * H) // oh_)
        for j in range(ow_):
            w0, w1 = (j * W) // ow_, -(-((j + 1) * W) // ow_)
            for n in range(N):
                for c in range(C):
                    best, where = -np.inf, (h0, w0)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = x[n, c, h, w]
                            if v > best or np.isnan(v):
                                best, where = v, (h, w)
                    y[n, c, i, j] = best
                    idx[n, c, i, j] = where[0] * W + where[1]
    return y, idx
