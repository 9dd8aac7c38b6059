import math

import numpy as _np

from cupy import _unwrap, _wrap

_erf = _np.frompyfunc(math.erf, 1, 1)


def erf(x):
    x = _unwrap(x)
    return _wrap(_erf(x).astype(x.dtype))


_erfc = _np.frompyfunc(math.erfc, 1, 1)


def erfc(x):
    x = _unwrap(x)
    return _wrap(_erfc(x).astype(x.dtype))
