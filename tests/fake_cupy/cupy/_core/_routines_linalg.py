"""fake: the GEMM compute-type switch (TF32); NumPy's matmul ignores it."""
import numpy as _np

COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_FP32, COMPUTE_TYPE_TF32 = 0, 1, 4, 7
_types = {}


def set_compute_type(dtype, compute_type):
    _types[_np.dtype(dtype)] = compute_type


def get_compute_type(dtype):
    return _types.get(_np.dtype(dtype), COMPUTE_TYPE_DEFAULT)
