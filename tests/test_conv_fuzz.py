"""conv2d over random geometries, each of its host paths in turn (the row path, im2col, the
direct depthwise path, strided convolutions and their phase-grid input gradient), against
direct loops written from the definition: the output and the gradients of x, W and b for a
random upstream gradient, in float64, with one thread and on uneven thread parts."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional import conv, conv_rows
from tests import reference as R


def _vjp(x, w, g, stride, padding, dilation, groups):
    """(gx, gW, gb) of y = conv2d(x, w, b) for upstream g, by loops over the definition
    y[n, o, oh, ow] = b[o] + sum_(c, i, j) w[o, c, i, j] * x[n, G(o)*Cg + c, oh*SH - PH + i*DH,
    ow*SW - PW + j*DW] (terms outside x are zero)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    Og = O // groups
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    for n, o, oh, ow in np.ndindex(g.shape):
        base = (o // Og) * Cg
        for c, i, j in np.ndindex(Cg, KH, KW):
            h, v = oh * sh - ph + i * dh, ow * sw - pw + j * dw
            if 0 <= h < H and 0 <= v < W:
                gx[n, base + c, h, v] += w[o, c, i, j] * g[n, o, oh, ow]
                gw[o, c, i, j] += x[n, base + c, h, v] * g[n, o, oh, ow]
    return gx, gw, g.sum(axis=(0, 2, 3))


def _geometry(rng, kind):
    """Random (x shape, w shape, stride, padding, dilation, groups) that ``conv2d`` runs by
    the path ``kind`` names (an error if 1000 draws give none)."""
    for _ in range(1000):
        N = int(rng.integers(1, 4))
        KH, KW = (int(k) for k in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = tuple(int(v) for v in rng.integers(0, 3, 2))
        H, W = (int(v) for v in rng.integers(3, 10, 2))
        s, G = (1, 1), 1
        if kind == "strided":
            s = tuple(int(v) for v in rng.integers(1, 4, 2))
            G = int(rng.choice([1, 2]))
        elif kind == "depthwise":
            G = int(rng.integers(2, 6))
        elif kind == "im2col":
            G = int(rng.choice([1, 2, 3]))
        C = G * (1 if kind == "depthwise" else int(rng.integers(1, 4)))
        O = G * (1 if kind == "depthwise" else int(rng.integers(1, 4)))
        if kind == "strided" and s == (1, 1) or kind == "rows" and KH * KW == 1:
            continue
        if any(n + 2 * q < e * (k - 1) + 1 for n, q, e, k in ((H, p[0], d[0], KH),
                                                              (W, p[1], d[1], KW))):
            continue
        x = np.empty((N, C, H, W))
        wt = np.empty((O, C // G, KH, KW))
        if _path(x, wt, s, p, d, G) == kind:
            return x.shape, wt.shape, s, p, d, G
    raise AssertionError(f"no random geometry takes the {kind} path")


def _path(x, w, s, p, d, G):
    if conv._depthwise(x, w, s, p, d, G):
        return "depthwise"
    if conv_rows.by_rows(x, w, s, G):
        return "rows"
    return "strided" if s != (1, 1) else "im2col"


@pytest.mark.parametrize("threads_on", [False, True])
@pytest.mark.parametrize("kind", ["rows", "im2col", "depthwise", "strided"])
def test_conv2d_paths_match_loops_on_random_geometries(rng, request, kind, threads_on):
    if threads_on:
        request.getfixturevalue("threaded")     # 3 parts, uneven for batches of 1-3 images
    for _ in range(10):
        x_shape, w_shape, s, p, d, G = _geometry(rng, kind)
        x, w, b = (rng.standard_normal(shape) for shape in (x_shape, w_shape, w_shape[:1]))
        ts = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.conv2d(*ts, stride=s, padding=p, dilation=d, groups=G)
        want = R.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=G)
        where = f"{kind}: x {x_shape}, w {w_shape}, stride {s}, padding {p}, dilation {d}, " \
                f"groups {G}"
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=where)
        g = rng.standard_normal(want.shape)
        y.backward(minidl.tensor(g))
        for t, r, name in zip(ts, _vjp(x, w, g, s, p, d, G), ("x", "W", "b")):
            np.testing.assert_allclose(t.grad.numpy(), r, rtol=1e-11, atol=1e-11,
                                       err_msg=f"gradient of {name}, {where}")

