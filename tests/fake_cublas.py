"""A stand-in for libcublas on the emulated GPU (tests/fake_cupy): the entry points that
``minidl.kernels.cublas`` calls through ctypes, with cuBLAS's column-major semantics and its
argument checks, on the host memory that fake device arrays live in.

It takes the same ctypes arguments as the real library (handles by reference, scalars by
pointer, device pointers as addresses), so minidl's layout logic (which operand is transposed,
the leading dimensions, the argument order of the row-major trick) runs unchanged and is
checked against NumPy. Calls made while the handle's stream captures are recorded into the
capture, as a real cuBLAS call on a capturing stream would be, and run only on replay.

Workspaces as cuBLAS documents them: ``cublasSetStream_v2`` resets the handle's workspace to
the library's default pool. A GEMM without a workspace of the user's counts in
``pool_gemms``; while capturing it fails (status NOT_SUPPORTED), standing in for the pool
allocation a real capture must not make (stricter than cuBLAS, which may get away with it).
"""
import ctypes
import itertools

import numpy as np

_STATUS_SUCCESS, _STATUS_INVALID_VALUE, _STATUS_NOT_SUPPORTED = 0, 7, 15
_OP_N, _OP_T = 0, 1


def _value(x):
    return x.value if hasattr(x, "value") else x


def _deref(ref):
    return ref._obj.value            # ctypes.byref(...) of a c_float / c_double


def _matrix(ptr, rows, cols, ld, dtype):
    """The column-major (rows, cols) matrix at address ``ptr`` with leading dimension ``ld``."""
    itemsize = np.dtype(dtype).itemsize
    n = ld * (cols - 1) + rows
    buf = (ctypes.c_char * (n * itemsize)).from_address(ptr)
    flat = np.frombuffer(buf, dtype)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (itemsize, ld * itemsize))


class FakeCublas:
    def __init__(self):
        self._ids = itertools.count(1)
        self.streams = {}               # handle -> stream ptr
        self.math_modes = {}            # handle -> cublasMath_t
        self.workspaces = {}            # handle -> (ptr, bytes) set by the user, or None
        self.calls = 0                  # gemm calls, run or recorded
        self.pool_gemms = 0             # of them, those on cuBLAS's default workspace pool

    def cublasCreate_v2(self, handle_ref):
        handle_ref._obj.value = next(self._ids)
        return _STATUS_SUCCESS

    def cublasSetWorkspace_v2(self, handle, ptr, size):
        ptr, size = _value(ptr), _value(size)
        if (ptr is None) != (size == 0):
            return _STATUS_INVALID_VALUE
        self.workspaces[_value(handle)] = (ptr, size) if size else None
        return _STATUS_SUCCESS

    def cublasSetStream_v2(self, handle, stream):
        self.streams[_value(handle)] = _value(stream) or 0
        self.workspaces[_value(handle)] = None      # back to the default pool (cuBLAS docs)
        return _STATUS_SUCCESS

    def cublasSetMathMode(self, handle, mode):
        self.math_modes[_value(handle)] = _value(mode)
        return _STATUS_SUCCESS

    def cublasSgemm_v2(self, *args):
        return self._gemm(np.float32, *args)

    def cublasDgemm_v2(self, *args):
        return self._gemm(np.float64, *args)

    def _gemm(self, dtype, handle, opa, opb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        opa, opb, m, n, k = (_value(v) for v in (opa, opb, m, n, k))
        lda, ldb, ldc = _value(lda), _value(ldb), _value(ldc)
        alpha, beta = _deref(alpha), _deref(beta)
        a_rows, a_cols = (m, k) if opa == _OP_N else (k, m)
        b_rows, b_cols = (k, n) if opb == _OP_N else (n, k)
        if (opa not in (_OP_N, _OP_T) or opb not in (_OP_N, _OP_T) or min(m, n, k) < 0
                or lda < max(1, a_rows) or ldb < max(1, b_rows) or ldc < max(1, m)):
            return _STATUS_INVALID_VALUE
        pa, pb, pc = _value(a), _value(b), _value(c)

        def run():
            A = _matrix(pa, a_rows, a_cols, lda, dtype)
            B = _matrix(pb, b_rows, b_cols, ldb, dtype)
            C = _matrix(pc, m, n, ldc, dtype)
            product = (A if opa == _OP_N else A.T) @ (B if opb == _OP_N else B.T)
            C[...] = alpha * product if beta == 0 else alpha * product + beta * C

        from cupy import cuda         # the fake's streams: is this handle's stream capturing?
        stream = cuda._streams.get(self.streams.get(_value(handle), 0))
        capturing = stream is not None and stream.tape is not None
        if self.workspaces.get(_value(handle)) is None:
            if capturing:
                return _STATUS_NOT_SUPPORTED
            self.pool_gemms += 1
        self.calls += 1
        if capturing:
            stream.tape.append(run)
        else:
            run()
        return _STATUS_SUCCESS
