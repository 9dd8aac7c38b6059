"""Raw-array building blocks below the autograd layer: im2col / col2im, scratch buffers and
the pool of buffers kept between a forward and its backward (``kernels.pool``).

``im2col`` and ``col2im`` here take NumPy or CuPy arrays and route to the readable xp version
(``kernels/im2col.py``, used for NumPy) or to the hand-written CUDA kernels
(``kernels/cuda.py``, used for CuPy); both have the same signature and results, so
``functional/`` never branches on the backend. Only numpy and ``minidl.backend`` are imported
here; CuPy is touched only when a CuPy array arrives.
"""
from .. import backend
from . import im2col as reference
from . import pool, threads
from .im2col import (fold_phases, out_size, phase_grid, release_scratch, row_geometry, row_grid,
                     row_unfold_shape, scratch, unfold_rows)


def _on_host(x):
    return not backend._is_cupy_array(x)


def matmul(a, b):
    """``a @ b``; in a CUDA-graph step (``minidl.cuda_graph``), through cuBLAS called directly
    (``kernels/cublas.py``), since CuPy refuses its own cuBLAS calls while capturing. The
    step's eager warm-up calls take that path too, so that the captured GEMMs are the ones
    already run (cuBLAS kernels loaded, the same results as the warm-up)."""
    if backend.active_graph() is not None and backend._is_cupy_array(a):
        from . import cublas  # noqa: PLC0415
        return cublas.matmul(a, b)
    if _on_host(a) and threads.get_num_threads() > 1:
        return _host_matmul(a, b)
    return a @ b


def _host_matmul(a, b):
    """``a @ b`` on minidl's host threads (``kernels.threads``): a 2-D product split into
    blocks of the output's columns (or rows, when there are more of those), a batch of them
    (a grouped convolution's) into blocks of the batch, one block per thread, each a one-thread
    BLAS call; a long inner dimension (``_long_k_matmul``) into blocks of it; other shapes
    (1-D, broadcast batches) as one one-thread call."""
    import numpy as np  # noqa: PLC0415
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] == b.shape[0] and a.shape[2] == b.shape[1]:
        G, M, K = a.shape
        out = np.empty((G, M, b.shape[2]), np.result_type(a, b))

        def batch(lo, hi):
            np.matmul(a[lo:hi], b[lo:hi], out=out[lo:hi])
        threads.parallel(batch, G, items=out.size * K // 32)
        return out
    if a.ndim != 2 or b.ndim != 2:
        out = []
        threads.parallel(lambda lo, hi: out.append(a @ b), 1)   # one part: one BLAS thread
        return out[0]
    (M, K), N = a.shape, b.shape[1]
    if M and N and K >= _LONG_K * max(M, N):
        return _long_k_matmul(a, b)
    out = np.empty((M, N), np.result_type(a, b))
    if N >= M:
        def part(lo, hi):
            np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])
        threads.parallel(part, N, items=N * M * K // 32)
    else:
        def part(lo, hi):
            np.matmul(a[lo:hi], b, out=out[lo:hi])
        threads.parallel(part, M, items=M * N * K // 32)
    return out


_LONG_K = 8           # inner dimension / larger output side from which _long_k_matmul is used
_K_CHUNK = 1024      # inner-dimension values per BLAS call there


def _long_k_matmul(a, b):
    """``a @ b`` for a small result and a long inner dimension K (a weight gradient: K is
    every output position of a batch): each thread sums the products of its part of K in
    chunks of ``_K_CHUNK``, with the larger result side as the BLAS call's rows (both
    measured fastest for OpenBLAS here: the stem's 16x27 gradient over 131k positions 3.7 ->
    1.9 ms), and the threads' partial sums are added in a fixed order."""
    import numpy as np  # noqa: PLC0415
    flip = b.shape[1] > a.shape[0]
    if flip:                                  # (a @ b).T = b.T @ a.T
        a, b = b.T, a.T
    K = a.shape[1]

    def part(lo, hi):
        total = None
        for s in range(lo, hi, _K_CHUNK):
            e = min(hi, s + _K_CHUNK)
            p = np.matmul(a[:, s:e], b[s:e])
            if total is None:
                total = p
            else:
                total += p
        return total

    total = threads.summed(part, K, items=K * (a.shape[0] + b.shape[1]))
    return np.ascontiguousarray(total.T) if flip else total


def im2col(x, kernel_size, stride, padding, dilation, out=None):
    """Unfold x (N, C, H, W) into columns (C, KH, KW, N, OH, OW); see ``reference.im2col``."""
    if _on_host(x):
        return reference.im2col(x, kernel_size, stride, padding, dilation, out)
    from . import cuda  # noqa: PLC0415  (CuPy only when a GPU array arrives)
    return cuda.im2col(x, kernel_size, stride, padding, dilation, out)


def col2im(col, x_shape, stride, padding, dilation):
    """Fold columns back into an (N, C, H, W) image, summing overlaps; see
    ``reference.col2im``."""
    if _on_host(col):
        return reference.col2im(col, x_shape, stride, padding, dilation)
    from . import cuda  # noqa: PLC0415
    return cuda.col2im(col, x_shape, stride, padding, dilation)


__all__ = ["col2im", "fold_phases", "im2col", "matmul", "out_size", "phase_grid", "pool",
           "reference", "release_scratch", "row_geometry", "row_grid", "row_unfold_shape",
           "scratch", "unfold_rows"]
