"""CUDA versions of the im2col / col2im kernels, with the signatures of ``kernels/im2col.py``.

Each is one hand-written kernel (CuPy ``RawModule``), compiled on first use and cached at module
level; importing this module does not import CuPy. Both take arbitrary input strides (so the
channel-major views that conv2d passes around are read in place, without a copy), launch
asynchronously on the current stream (no host synchronization) and allocate only their result,
from CuPy's memory pool.

- im2col: one thread per column entry writes ``col[c, i, j, n, oh, ow]`` (zero where the
  receptive field falls in the padding); the reads of a warp are along ``ow``.
- col2im: one thread per input pixel *gathers* the column entries that came from it, so the
  sums are deterministic (no atomics) and padding is never materialized.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .im2col import out_size

_SOURCE = r"""
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ col, long long total,
        int N, int H, int W, long long sn, long long sc, long long sh, long long sw,
        int KH, int KW, int OH, int OW, int SH, int SW, int PH, int PW, int DH, int DW) {
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        long long r = idx;
        const int ow = (int)(r % OW); r /= OW;
        const int oh = (int)(r % OH); r /= OH;
        const int n = (int)(r % N); r /= N;
        const int j = (int)(r % KW); r /= KW;
        const int i = (int)(r % KH); r /= KH;
        const long long c = r;
        const int h = oh * SH - PH + i * DH;
        const int w = ow * SW - PW + j * DW;
        T v = (T)0;
        if (h >= 0 && h < H && w >= 0 && w < W) {
            v = x[n * sn + c * sc + h * sh + w * sw];
        }
        col[idx] = v;
    }
}

template <typename T>
__global__ void col2im_kernel(const T* __restrict__ col, T* __restrict__ gx, long long total,
        int N, int H, int W, int KH, int KW, int OH, int OW,
        int SH, int SW, int PH, int PW, int DH, int DW) {
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        long long r = idx;                              // gx is (C, N, H, W), contiguous
        const int w = (int)(r % W); r /= W;
        const int h = (int)(r % H); r /= H;
        const int n = (int)(r % N); r /= N;
        const long long c = r;
        T sum = (T)0;
        for (int i = 0; i < KH; ++i) {
            const int th = h + PH - i * DH;
            if (th < 0) break;
            if (th % SH != 0) continue;
            const int oh = th / SH;
            if (oh >= OH) continue;
            for (int j = 0; j < KW; ++j) {
                const int tw = w + PW - j * DW;
                if (tw < 0) break;
                if (tw % SW != 0) continue;
                const int ow = tw / SW;
                if (ow >= OW) continue;
                sum += col[((((c * KH + i) * KW + j) * N + n) * OH + oh) * OW + ow];
            }
        }
        gx[idx] = sum;
    }
}
"""

_NAMES = ("im2col_kernel<float>", "im2col_kernel<double>",
          "col2im_kernel<float>", "col2im_kernel<double>")
_THREADS = 256
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


class KernelSource:
    """The kernels of one CUDA source: compiled together (a CuPy ``RawModule``) on first use,
    once per process; ``names`` are the template instantiations to build."""

    def __init__(self, source, names):
        self.source, self.names = source, names
        self.module = None
        self._functions = {}     # (base, dtype) -> (module, function): looked up once per launch

    def function(self, base, dtype):
        """The compiled kernel ``base<float>`` or ``base<double>`` for ``dtype``."""
        if self.module is None:
            cp = backend.cupy_module()
            self.module = cp.RawModule(code=self.source, options=("-std=c++14",),
                                       name_expressions=self.names)
        key = (base, np.dtype(dtype))
        found = self._functions.get(key)
        if found is None or found[0] is not self.module:
            ctype = _CTYPES.get(key[1])
            if ctype is None:
                raise TypeError(f"{base}: CUDA kernels support float32 and float64, got "
                                f"{key[1]}")
            found = self._functions[key] = (self.module,
                                            self.module.get_function(f"{base}<{ctype}>"))
        return found[1]


_KERNELS = KernelSource(_SOURCE, _NAMES)


def _kernel(name, dtype):
    return _KERNELS.function(f"{name}_kernel", dtype)


def launch(kernel, total, args):
    """Launch an elementwise (grid-stride) kernel over ``total`` items."""
    blocks = max(1, min((total + _THREADS - 1) // _THREADS, 1 << 20))
    kernel((blocks,), (_THREADS,), args)


def im2col(x, kernel_size, stride, padding, dilation, out=None):
    """GPU ``im2col`` (same contract as ``kernels.im2col.im2col``); x may have any strides."""
    cp = backend.cupy_module()
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = out_size(H, KH, sh, ph, dh), out_size(W, KW, sw, pw, dw)
    col = cp.empty((C, KH, KW, N, OH, OW), x.dtype) if out is None else out
    total = col.size
    if total == 0:
        return col
    st = [s // x.itemsize for s in x.strides]
    i32 = np.int32
    launch(_kernel("im2col", x.dtype), total,
            (x, col, np.int64(total), i32(N), i32(H), i32(W), np.int64(st[0]), np.int64(st[1]),
             np.int64(st[2]), np.int64(st[3]), i32(KH), i32(KW), i32(OH), i32(OW), i32(sh),
             i32(sw), i32(ph), i32(pw), i32(dh), i32(dw)))
    return col


def col2im(col, x_shape, stride, padding, dilation):
    """GPU ``col2im`` (same contract as ``kernels.im2col.col2im``)."""
    cp = backend.cupy_module()
    N, C, H, W = x_shape
    col = cp.ascontiguousarray(col)
    KH, KW = col.shape[1:3]
    OH, OW = col.shape[4:6]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    gx = cp.empty((C, N, H, W), col.dtype)
    total = gx.size
    if total:
        i32 = np.int32
        launch(_kernel("col2im", col.dtype), total,
                (col, gx, np.int64(total), i32(N), i32(H), i32(W), i32(KH), i32(KW), i32(OH),
                 i32(OW), i32(sh), i32(sw), i32(ph), i32(pw), i32(dh), i32(dw)))
    return gx.transpose(1, 0, 2, 3)
