"""fake cupyx.scipy.special: erf and erfc, elementwise, through fake cupy's call path (so a
CUDA-graph capture records them and every replay recomputes them, as CuPy's kernels are)."""
import math

import numpy as _np

from cupy import _call

_erf = _np.frompyfunc(math.erf, 1, 1)
_erfc = _np.frompyfunc(math.erfc, 1, 1)


def _typed(f, name):
    def run(x):
        return f(x).astype(x.dtype)
    run.__name__ = name
    return run


_erf_typed, _erfc_typed = _typed(_erf, "erf"), _typed(_erfc, "erfc")


def erf(x):
    return _call(_erf_typed, (x,), {})


def erfc(x):
    return _call(_erfc_typed, (x,), {})
