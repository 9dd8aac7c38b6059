"""Matrix products through cuBLAS called directly (ctypes), for CUDA-graph capture.

CuPy refuses every cuBLAS call while a stream is being captured into a CUDA graph
(``NotImplementedError: calling cuBLAS API during stream capture is currently unsupported``),
so ``a @ b`` cannot be part of a captured training step. cuBLAS itself can be captured: this
module calls ``cublas{S,D}gemm_v2`` through ctypes with a handle of its own, bound to the
current stream and given a workspace of its own (so cuBLAS allocates nothing while
capturing). ``kernels.matmul`` routes here only inside a CUDA-graph step (its warm-up calls
and its capture, ``minidl.cuda_graph``); other code keeps CuPy's matmul.

Layout: NumPy and CuPy arrays are row-major, cuBLAS is column-major. A row-major (M, K) matrix
with row stride ``ld`` is, read column-major, its transpose (K, M) with leading dimension
``ld``. So the row-major product C = A @ B (M, N) is computed as the column-major product
C^T = B^T A^T: ``gemm(op_B, op_A, N, M, K, B, A, C)``, each operand passed without a copy when
one of its strides is the item size (a transposed view is the other layout: op = T), copied
to C order otherwise.

The library is found among the shared objects already loaded in the process (CuPy loads its
cuBLAS), then in the usual CUDA locations, those whose major version (``libcublas.so.13``) is
the CUDA runtime's (``cupy.cuda.runtime.runtimeGetVersion``) first: another framework may
have loaded a cuBLAS of another CUDA release into the process. ``use_library`` overrides the
search (a path, or an object with the cuBLAS entry points, as the tests' emulated GPU passes).

Workspace: ``cublasSetStream_v2`` resets a handle's workspace to cuBLAS's default pool (which
allocates, and must not while a graph is captured), so the handle is rebound only when the
stream changes, and its own workspace is set again right after. The module lock is held from
the binding through the GEMMs, so two threads cannot rebind the handle under each other.

Sizes are C ints for the ``_v2`` entry points: a dimension above 2^31 - 1 is refused with a
ValueError (not wrapped around), and an operand whose row stride exceeds it is copied.
"""
from __future__ import annotations

import ctypes
import glob
import os
import re
import threading

import numpy as np

from .. import backend

_OP_N, _OP_T = 0, 1
_DEFAULT_MATH, _TF32_MATH = 0, 3       # cublasMath_t
_WORKSPACE_BYTES = 32 << 20            # NVIDIA's recommendation for Hopper; 4 MiB suffices before
_INT_MAX = 2**31 - 1                   # the _v2 entry points take int sizes

_lock = threading.Lock()
_library = None
_handles = {}         # device id -> [handle, workspace array, math mode set, stream bound]


def use_library(library):
    """Use this cuBLAS: a path to ``libcublas.so``, or an object with its C entry points
    (``cublasCreate_v2``, ``cublasSetStream_v2``, ``cublasSetWorkspace_v2``,
    ``cublasSetMathMode``, ``cublasSgemm_v2``, ``cublasDgemm_v2``) as ctypes callables.
    Handles made with the previous library are dropped."""
    global _library
    with _lock:
        _library = ctypes.CDLL(library) if isinstance(library, (str, os.PathLike)) else library
        _handles.clear()


def _loaded_libraries():
    """Paths of the libcublas objects mapped into this process."""
    try:
        with open("/proc/self/maps") as maps:
            return [line.split()[-1] for line in maps if "libcublas.so" in line]
    except OSError:
        return []


def _major(path):
    """The major version in a ``libcublas.so.N[...]`` file name, or None (unversioned)."""
    m = re.search(r"libcublas\.so\.(\d+)", os.path.basename(path))
    return int(m.group(1)) if m else None


def _runtime_major():
    """The CUDA runtime's major version (13 for 13.x), or None when it cannot be asked."""
    try:
        return int(backend.cupy_module().cuda.runtime.runtimeGetVersion()) // 1000
    except Exception:
        return None


def _candidates(major=None):
    """Paths to try, the loaded ones first, then the usual locations; with ``major``, those
    of that major version before unversioned names, before other versions."""
    found = list(dict.fromkeys(_loaded_libraries()))
    for pattern in ("/usr/local/cuda*/lib64/libcublas.so*", "/usr/local/cuda*/lib/libcublas.so*",
                    "/usr/lib/x86_64-linux-gnu/libcublas.so*"):
        found += sorted(glob.glob(pattern), reverse=True)
    found = [p for p in dict.fromkeys(found) if "libcublasLt" not in os.path.basename(p)]
    if major is None:
        return found

    def rank(path):
        v = _major(path)
        return 0 if v == major else 1 if v is None else 2
    return sorted(found, key=rank)        # stable: the search order within each rank


def _load():
    global _library
    if _library is None:
        cp = backend.cupy_module()
        try:                                   # makes CuPy load its cuBLAS, whose path we reuse
            cp.cuda.device.get_cublas_handle()
        except Exception:
            pass
        errors = []
        for path in _candidates(_runtime_major()):
            try:
                _library = ctypes.CDLL(path)
                break
            except OSError as exc:
                errors.append(f"{path}: {exc}")
        else:
            raise RuntimeError(
                "cuBLAS: could not load libcublas for graph capture (tried "
                f"{errors or 'nothing found'}); pass its path to "
                "minidl.kernels.cublas.use_library")
    return _library


def _check(status, call):
    if status != 0:
        raise RuntimeError(f"cuBLAS: {call} failed with status {status}")


def _bind(device_id, stream_ptr, tf32):
    """This device's handle, bound to ``stream_ptr`` with its own workspace and the requested
    math mode; the caller holds ``_lock`` until its GEMMs are queued."""
    lib = _load()
    entry = _handles.get(device_id)
    if entry is None:
        h = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(h)), "cublasCreate_v2")
        work = backend.cupy_module().empty(_WORKSPACE_BYTES, np.uint8)
        entry = _handles[device_id] = [h, work, None, None]
    h = entry[0]
    if entry[3] != stream_ptr:
        # SetStream resets the workspace to cuBLAS's own pool: set ours again right after
        _check(lib.cublasSetStream_v2(h, ctypes.c_void_p(stream_ptr)), "cublasSetStream_v2")
        entry[3] = None                   # a failure below leaves the binding to be redone
        _check(lib.cublasSetWorkspace_v2(h, ctypes.c_void_p(entry[1].data.ptr),
                                         ctypes.c_size_t(_WORKSPACE_BYTES)),
               "cublasSetWorkspace_v2")
        entry[3] = stream_ptr
    mode = _TF32_MATH if tf32 else _DEFAULT_MATH
    if entry[2] != mode:
        _check(lib.cublasSetMathMode(h, ctypes.c_int(mode)), "cublasSetMathMode")
        entry[2] = mode
    return lib, h


def prepare():
    """Create the current device's handle and workspace now (a capture must not allocate
    them)."""
    cp = backend.cupy_module()
    with _lock:
        _bind(cp.cuda.Device().id, cp.cuda.get_current_stream().ptr, backend.tf32_enabled())


def _operand(x):
    """(array, op, ld) describing the row-major matrix ``x`` to cuBLAS without a copy when its
    strides allow, else of a C-ordered copy."""
    rows, cols = x.shape
    e = x.itemsize
    s0, s1 = x.strides
    if ((s1 == e or cols == 1) and s0 % e == 0 and max(cols, 1) <= s0 // e <= _INT_MAX
            and s0 > 0):
        return x, _OP_N, s0 // e
    if ((s0 == e or rows == 1) and s1 % e == 0 and max(rows, 1) <= s1 // e <= _INT_MAX
            and s1 > 0):
        return x, _OP_T, s1 // e
    x = backend.xp_of(x).ascontiguousarray(x)
    return x, _OP_N, max(cols, 1)


def _gemm2d(lib, h, a, b, out):
    """out (M, N), C-contiguous  <-  a (M, K) @ b (K, N)."""
    M, K = a.shape
    N = b.shape[1]
    a, op_a, lda = _operand(a)
    b, op_b, ldb = _operand(b)
    if a.dtype == np.float32:
        fn, scalar, name = lib.cublasSgemm_v2, ctypes.c_float, "cublasSgemm_v2"
    else:
        fn, scalar, name = lib.cublasDgemm_v2, ctypes.c_double, "cublasDgemm_v2"
    one, zero = scalar(1.0), scalar(0.0)
    _check(fn(h, ctypes.c_int(op_b), ctypes.c_int(op_a), ctypes.c_int(N), ctypes.c_int(M),
              ctypes.c_int(K), ctypes.byref(one), ctypes.c_void_p(b.data.ptr),
              ctypes.c_int(ldb), ctypes.c_void_p(a.data.ptr), ctypes.c_int(lda),
              ctypes.byref(zero), ctypes.c_void_p(out.data.ptr), ctypes.c_int(max(N, 1))),
           name)


def matmul(a, b):
    """``a @ b`` for CuPy arrays of float32 or float64 (NumPy's rules: leading axes broadcast,
    a 1-D operand acts as a row or a column), computed by cuBLAS on the current stream."""
    xp = backend.xp_of(a)
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"cublas.matmul: operands must both be float32 or both float64, got "
                        f"{a.dtype} and {b.dtype}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"cublas.matmul: operands need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    a_row, b_col = a.ndim == 1, b.ndim == 1
    if a_row:
        a = a[None, :]
    if b_col:
        b = b[:, None]
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"cublas.matmul: shapes {a.shape} and {b.shape} are not aligned")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    if max(M, K, N) > _INT_MAX:
        raise ValueError(f"cublas.matmul: shapes {a.shape} and {b.shape} have a dimension "
                         f"above 2^31 - 1, more than cuBLAS's int sizes hold; split the "
                         "product")
    out = xp.empty(batch + (M, N), a.dtype)
    if M and N:
        if K == 0:
            out.fill(0)
        else:
            stream = xp.cuda.get_current_stream()
            a = xp.broadcast_to(a, batch + (M, K))
            b = xp.broadcast_to(b, batch + (K, N))
            with _lock:
                lib, h = _bind(xp.cuda.Device().id, stream.ptr,
                               backend.tf32_enabled() and a.dtype == np.float32)
                for idx in np.ndindex(*batch):
                    _gemm2d(lib, h, a[idx], b[idx], out[idx])
    if a_row or b_col:
        out = out.reshape(batch + ((N,) if not b_col else (M,) if not a_row else ()))
    return out
