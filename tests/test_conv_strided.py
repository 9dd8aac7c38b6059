"""The host's input gradient of strided convolutions (``conv._input_grad_phases``: gy widened
to the phase grid, one GEMM, ``kernels.fold_phases``) against col2im of the compact columns,
over random geometries, on uneven thread parts, and into memory spoiled beforehand.
The gradchecks of strided convolutions are in test_conv.py (they take this path)."""
import numpy as np
import pytest

from minidl import kernels
from minidl.functional import conv


def _geometry(rng):
    """A random strided convolution: (x shape, weight shape, stride, padding, dilation,
    groups), with every size valid."""
    while True:
        G = int(rng.choice([1, 1, 2, 3]))
        C, O = G * int(rng.integers(1, 4)), G * int(rng.integers(1, 4))
        KH, KW = (int(k) for k in rng.integers(1, 6, 2))
        s = tuple(int(v) for v in rng.integers(1, 5, 2))
        if s == (1, 1):
            continue
        d = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(v) for v in rng.integers(0, 4, 2))
        H, W = (int(v) for v in rng.integers(1, 14, 2))
        if all(n + 2 * q >= e * (k - 1) + 1 for n, q, e, k in ((H, p[0], d[0], KH),
                                                                 (W, p[1], d[1], KW))):
            return (int(rng.integers(1, 5)), C, H, W), (O, C // G, KH, KW), s, p, d, G


def _by_col2im(W, gy, x_shape, s, p, d, G):
    """The same gradient by the compact columns and ``col2im`` (the GPU's route)."""
    O, Cg, KH, KW = W.shape
    N, OH, OW = gy.shape[0], gy.shape[2], gy.shape[3]
    gY = gy.transpose(1, 0, 2, 3).reshape(O, -1)
    gcol = conv._grouped_matmul(conv._group_t(W, G), gY, G)
    return kernels.col2im(gcol.reshape(x_shape[1], KH, KW, N, OH, OW), x_shape, s, p, d)


def _case(rng, geometry):
    x_shape, w_shape, s, p, d, G = geometry
    OH, OW = (kernels.out_size(n, k, st, q, e) for n, k, st, q, e in
              ((x_shape[2], w_shape[2], s[0], p[0], d[0]), (x_shape[3], w_shape[3], s[1], p[1],
                                                             d[1])))
    W = rng.standard_normal(w_shape)
    gy = rng.standard_normal((x_shape[0], w_shape[0], OH, OW))
    return W, gy


@pytest.mark.parametrize("threads_on", [False, True])
def test_phase_fold_equals_col2im_on_random_geometries(rng, request, threads_on):
    if threads_on:
        request.getfixturevalue("threaded")     # 3 uneven parts for a batch of up to 4
    for _ in range(60):
        geometry = _geometry(rng)
        x_shape, _, s, p, d, G = geometry
        W, gy = _case(rng, geometry)
        got = conv._input_grad_phases(W, gy, x_shape, s, p, d, G)
        assert got.shape == x_shape
        np.testing.assert_array_equal(got, _by_col2im(W, gy, x_shape, s, p, d, G),
                                      err_msg=str(geometry))


@pytest.mark.parametrize("geometry", [
    ((2, 3, 8, 8), (4, 3, 1, 1), (2, 2), (0, 0), (1, 1), 1),   # 3 of 4 phases get nothing
    ((2, 2, 7, 9), (2, 2, 2, 2), (3, 3), (0, 1), (1, 1), 1),   # rows and columns get nothing
    ((3, 4, 9, 6), (4, 2, 3, 3), (2, 2), (1, 1), (1, 1), 2),   # ResNet's 3x3 stride 2, odd H
    ((2, 2, 10, 10), (3, 2, 3, 3), (4, 4), (3, 3), (3, 3), 1),
])
def test_phase_fold_writes_every_pixel_and_reads_no_stale_memory(rng, geometry):
    x_shape, w_shape, s, p, d, G = geometry
    W, gy = _case(rng, geometry)
    want = _by_col2im(W, gy, x_shape, s, p, d, G)
    N, C = x_shape[:2]
    OH, OW = gy.shape[2:]
    Gh, Gw = kernels.phase_grid(x_shape, w_shape[2:], s, p, d)
    # freed arrays of NaN the size of the temporaries, which malloc is likely to hand back
    stale = [np.full(shape, np.nan) for shape in ((w_shape[0], N, Gh, Gw), (C, N * Gh * Gw),
                                                  (C * w_shape[2] * w_shape[3], N * Gh * Gw))]
    del stale
    np.testing.assert_array_equal(conv._input_grad_phases(W, gy, x_shape, s, p, d, G), want)

    gcol = conv._group_t(W, G).reshape(G, -1, w_shape[0] // G) @ np.pad(
        gy.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (0, Gh - OH), (0, Gw - OW))).reshape(
        G, w_shape[0] // G, -1)
    out = np.full((C, N) + x_shape[2:], np.nan)
    kernels.fold_phases(gcol.reshape(C, w_shape[2], w_shape[3], -1), out, s, p, d, (Gh, Gw))
    np.testing.assert_array_equal(out.transpose(1, 0, 2, 3), want)


def test_phase_grid_covers_shifts_and_phases():
    # ResNet's 3x3 stride-2 "same" layer: the output plus one row and column (the shift of
    # kernel row 2 within its phase), which is also the padded input's phase length
    assert kernels.phase_grid((128, 32, 16, 16), (3, 3), (2, 2), (1, 1), (1, 1)) == (9, 9)
    # 1x1 stride 2: the output's own size, no extra columns for the GEMM
    assert kernels.phase_grid((128, 16, 32, 32), (1, 1), (2, 2), (0, 0), (1, 1)) == (16, 16)
    # an odd height: the padded input's longest phase sets the rows
    assert kernels.phase_grid((1, 1, 9, 8), (1, 1), (2, 2), (0, 0), (1, 1)) == (5, 4)
