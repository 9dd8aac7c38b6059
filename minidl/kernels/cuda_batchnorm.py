"""Training-mode batch norm (optionally followed by ReLU) on the GPU in four kernel launches.

Written out with CuPy array operations, a training BN+ReLU step is about 20 launches forward
and 12 backward (means, centring, variance, square root, scaling, running statistics,
affine, ReLU, mask, two per-channel sums, the input gradient), each costing ~8 us of host time
however small the tensor; a ResNet-20 step has 19 of them. Here it is:

- ``bn_stats``: one block per channel: mean and biased variance in two passes (accumulated in
  double), ``invstd = 1 / sqrt(var + eps)``, and the running statistics updated in place
  (``running_var`` with the unbiased variance), all in one launch;
- ``bn_apply``: ``y = fma((x - mean) * invstd, w, b)``, then ``max(y, 0)`` with ReLU (NaN
  stays NaN, as ``np.maximum`` keeps it on the CPU), written channel-major (``(C, N, H, W)``
  memory, returned as an NCHW view like the CPU path);
- backward ``bn_grad_stats``: one block per channel: ``gb = sum(g)``, ``gw = sum(g * xhat)``
  where ``g`` is the upstream gradient masked by ``y > 0`` with ReLU (y recomputed from x with
  the same inline expression as forward, so the mask is exactly forward's; a NaN y masks it
  to 0, as the CPU's ``relu_mask``);
- ``bn_grad_input``: ``gx = w * invstd * (g - gb / n - xhat * gw / n)``.

Nothing is saved but x and the per-channel mean and invstd (x̂ and y are recomputed), and no
result is read back to the host. Inputs may have any strides (NCHW or channel-major views).
The per-channel kernels reduce through shared memory with a fixed order: deterministic.

The kernels read every per-channel vector as a contiguous array of x's dtype. ``weight`` and
``bias`` of another dtype or with a stride are copied to that form first; running statistics
that are not (a strided view, float64 statistics of a float32 input) are updated after the
kernel with array operations in their own dtype, as the CPU path does, rather than in place.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .cuda import KernelSource, launch

_SOURCE = r"""
#define BN_MAX_THREADS 256

// offset of element j = (n*H + h)*W + w of channel c in an array with strides (sn, sc, sh, sw)
__device__ __forceinline__ long long bn_offset(long long j, int c, int H, int W, long long sn,
        long long sc, long long sh, long long sw) {
    const long long w = j % W; j /= W;
    const long long h = j % H; j /= H;
    return j * sn + c * sc + h * sh + w * sw;
}

__device__ __forceinline__ float bn_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double bn_fma(double a, double b, double c) { return fma(a, b, c); }

// the normalized value and the output before ReLU: one expression, shared by all kernels
template <typename T>
__device__ __forceinline__ T bn_xhat(T x, T mean, T invstd) { return (x - mean) * invstd; }

// sums a and b over the threads of the block (blockDim.x a power of two <= BN_MAX_THREADS);
// every thread gets the totals
__device__ __forceinline__ void bn_block_sum2(double* s1, double* s2, double& a, double& b) {
    const int t = threadIdx.x;
    s1[t] = a;
    s2[t] = b;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) {
            s1[t] += s1[t + k];
            s2[t] += s2[t + k];
        }
        __syncthreads();
    }
    a = s1[0];
    b = s2[0];
    __syncthreads();
}

template <typename T>
__global__ void bn_stats_kernel(const T* __restrict__ x, int N, int H, int W, long long sn,
        long long sc, long long sh, long long sw, double eps, T* __restrict__ mean_out,
        T* __restrict__ invstd_out, T* __restrict__ var_out, int track,
        T* __restrict__ running_mean,
        T* __restrict__ running_var, double momentum) {
    __shared__ double s1[BN_MAX_THREADS];
    __shared__ double s2[BN_MAX_THREADS];
    const int c = blockIdx.x;
    const long long n = (long long)N * H * W;
    double sum = 0.0, unused = 0.0;
    for (long long j = threadIdx.x; j < n; j += blockDim.x)
        sum += (double)x[bn_offset(j, c, H, W, sn, sc, sh, sw)];
    bn_block_sum2(s1, s2, sum, unused);
    const double mean = sum / (double)n;
    double sq = 0.0;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) {
        const double d = (double)x[bn_offset(j, c, H, W, sn, sc, sh, sw)] - mean;
        sq += d * d;
    }
    bn_block_sum2(s1, s2, sq, unused);
    if (threadIdx.x == 0) {
        const double var = sq / (double)n;
        mean_out[c] = (T)mean;
        invstd_out[c] = (T)(1.0 / sqrt(var + eps));
        var_out[c] = (T)var;
        if (track) {
            running_mean[c] = (T)((double)running_mean[c] * (1.0 - momentum) + mean * momentum);
            running_var[c] = (T)((double)running_var[c] * (1.0 - momentum)
                                 + var * (momentum * (double)n / (double)(n - 1)));
        }
    }
}

template <typename T>
__global__ void bn_apply_kernel(const T* __restrict__ x, int N, int C, int H, int W,
        long long sn, long long sc, long long sh, long long sw, const T* __restrict__ mean,
        const T* __restrict__ invstd, const T* __restrict__ w, const T* __restrict__ b,
        int relu, T* __restrict__ y) {
    const long long n = (long long)N * H * W;
    const long long total = n * C;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const int c = (int)(idx / n);
        const long long j = idx - c * n;
        const T xh = bn_xhat(x[bn_offset(j, c, H, W, sn, sc, sh, sw)], mean[c], invstd[c]);
        T v = bn_fma(xh, w[c], b[c]);
        if (relu && v <= (T)0) v = (T)0;        // max(v, 0) as np.maximum: NaN stays NaN
        y[idx] = v;
    }
}

template <typename T>
__global__ void bn_grad_stats_kernel(const T* __restrict__ gy, long long gn, long long gc,
        long long gh, long long gw_, const T* __restrict__ x, int N, int H, int W,
        long long sn, long long sc, long long sh, long long sw, const T* __restrict__ mean,
        const T* __restrict__ invstd, const T* __restrict__ w, const T* __restrict__ b,
        int relu, T* __restrict__ grad_w, T* __restrict__ grad_b) {
    __shared__ double s1[BN_MAX_THREADS];
    __shared__ double s2[BN_MAX_THREADS];
    const int c = blockIdx.x;
    const long long n = (long long)N * H * W;
    double sg = 0.0, sgx = 0.0;
    for (long long j = threadIdx.x; j < n; j += blockDim.x) {
        const T xh = bn_xhat(x[bn_offset(j, c, H, W, sn, sc, sh, sw)], mean[c], invstd[c]);
        T g = gy[bn_offset(j, c, H, W, gn, gc, gh, gw_)];
        if (relu && !(bn_fma(xh, w[c], b[c]) > (T)0)) g = (T)0;    // as relu_mask: y > 0
        sg += (double)g;
        sgx += (double)g * (double)xh;
    }
    bn_block_sum2(s1, s2, sg, sgx);
    if (threadIdx.x == 0) {
        grad_b[c] = (T)sg;
        grad_w[c] = (T)sgx;
    }
}

template <typename T>
__global__ void bn_grad_input_kernel(const T* __restrict__ gy, long long gn, long long gc,
        long long gh, long long gw_, const T* __restrict__ x, int N, int C, int H, int W,
        long long sn, long long sc, long long sh, long long sw, const T* __restrict__ mean,
        const T* __restrict__ invstd, const T* __restrict__ w, const T* __restrict__ b,
        int relu, const T* __restrict__ grad_w, const T* __restrict__ grad_b,
        T* __restrict__ gx) {
    const long long n = (long long)N * H * W;
    const long long total = n * C;
    const T inv_n = (T)(1.0 / (double)n);
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
        const int c = (int)(idx / n);
        const long long j = idx - c * n;
        const T xh = bn_xhat(x[bn_offset(j, c, H, W, sn, sc, sh, sw)], mean[c], invstd[c]);
        T g = gy[bn_offset(j, c, H, W, gn, gc, gh, gw_)];
        if (relu && !(bn_fma(xh, w[c], b[c]) > (T)0)) g = (T)0;
        gx[idx] = (g - grad_b[c] * inv_n - xh * (grad_w[c] * inv_n)) * (invstd[c] * w[c]);
    }
}
"""

_NAMES = tuple(f"bn_{k}_kernel<{t}>" for k in ("stats", "apply", "grad_stats", "grad_input")
               for t in ("float", "double"))
_KERNELS = KernelSource(_SOURCE, _NAMES)
_BLOCK = 256          # threads of the per-channel kernels (a power of two, <= BN_MAX_THREADS)


def _geometry(x):
    """N, C, H, W and the element strides of an (N, C), (N, C, L) or (N, C, H, W) array."""
    shape, st = x.shape, [s // x.itemsize for s in x.strides]
    if x.ndim == 2:
        return (shape[0], shape[1], 1, 1), (st[0], st[1], 0, 0)
    if x.ndim == 3:
        return (shape[0], shape[1], 1, shape[2]), (st[0], st[1], 0, st[2])
    return shape, tuple(st)


def supports(x, running_mean):
    """Whether these kernels handle x (a CuPy float array of 2 to 4 dimensions whose running
    statistics, if any, have its dtype; other dtypes or strides of the vectors are dealt with
    by ``forward`` and ``backward``)."""
    return (backend._is_cupy_array(x) and x.dtype in (np.float32, np.float64)
            and 2 <= x.ndim <= 4 and (running_mean is None or running_mean.dtype == x.dtype))


def _fits(v, dtype):
    """Whether the kernels can use the (C,) vector v in place: x's dtype, contiguous."""
    return v.dtype == dtype and v.flags.c_contiguous


def _affine(xp, w, b, C, dtype):
    """w and b as contiguous vectors of x's dtype (ones and zeros when absent)."""
    w = xp.ones(C, dtype) if w is None else w if _fits(w, dtype) else \
        xp.ascontiguousarray(w, dtype=dtype)
    b = xp.zeros(C, dtype) if b is None else b if _fits(b, dtype) else \
        xp.ascontiguousarray(b, dtype=dtype)
    return w, b


def forward(x, w, b, running_mean, running_var, momentum, eps, relu):
    """Training-mode BN (+ReLU) of x. Returns (y, mean, invstd); y is an NCHW view of fresh
    channel-major memory. ``running_*`` (or None) are updated in place."""
    xp = backend.xp_of(x)
    (N, C, H, W), (sn, sc, sh, sw) = _geometry(x)
    dtype, i32, i64 = x.dtype, np.int32, np.int64
    mean, invstd, var = xp.empty((3, C), dtype)      # one allocation for the three
    track = running_mean is not None
    in_place = track and _fits(running_mean, dtype) and _fits(running_var, dtype)
    rm, rv = (running_mean, running_var) if in_place else (mean, invstd)
    _KERNELS.function("bn_stats_kernel", dtype)(
        (C,), (_BLOCK,),
        (x, i32(N), i32(H), i32(W), i64(sn), i64(sc), i64(sh), i64(sw), np.float64(eps),
         mean, invstd, var, i32(in_place), rm, rv, np.float64(momentum)))
    if track and not in_place:       # the CPU path's update, in the statistics' own dtype
        n = N * H * W
        running_mean[...] = running_mean * (1.0 - momentum) + mean * momentum
        running_var[...] = running_var * (1.0 - momentum) + var * (momentum * n / (n - 1))
    w, b = _affine(xp, w, b, C, dtype)
    y = xp.empty((C, N) + x.shape[2:], dtype)
    launch(_KERNELS.function("bn_apply_kernel", dtype), y.size,
           (x, i32(N), i32(C), i32(H), i32(W), i64(sn), i64(sc), i64(sh), i64(sw), mean,
            invstd, w, b, i32(relu), y))
    return y.swapaxes(0, 1), mean, invstd


def backward(gy, x, mean, invstd, w, b, relu, need_gx):
    """Gradients (gx or None, gw, gb) of training-mode BN (+ReLU) for upstream ``gy``."""
    xp = backend.xp_of(x)
    gy = gy.astype(x.dtype, copy=False)             # the kernels read both as x's type
    (N, C, H, W), (sn, sc, sh, sw) = _geometry(x)
    _, gst = _geometry(gy)
    dtype, i32, i64 = x.dtype, np.int32, np.int64
    w, b = _affine(xp, w, b, C, dtype)
    gw, gb = xp.empty(C, dtype), xp.empty(C, dtype)  # each its own: the leaves keep them
    gargs = tuple(i64(s) for s in gst)
    _KERNELS.function("bn_grad_stats_kernel", dtype)(
        (C,), (_BLOCK,),
        (gy,) + gargs + (x, i32(N), i32(H), i32(W), i64(sn), i64(sc), i64(sh), i64(sw), mean,
                         invstd, w, b, i32(relu), gw, gb))
    gx = None
    if need_gx:
        gx = xp.empty((C, N) + x.shape[2:], dtype)
        launch(_KERNELS.function("bn_grad_input_kernel", dtype), gx.size,
               (gy,) + gargs + (x, i32(N), i32(C), i32(H), i32(W), i64(sn), i64(sc), i64(sh),
                                i64(sw), mean, invstd, w, b, i32(relu), gw, gb, gx))
        gx = gx.swapaxes(0, 1)
    return gx, gw, gb
