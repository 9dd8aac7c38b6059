"""fake cupy.random.RandomState: NumPy's legacy generator, results on the device."""
import numpy as _np

from . import _wrap


class RandomState:
    def __init__(self, seed=None):
        from . import cuda
        if cuda._tape() is not None:
            raise RuntimeError("fake cupy: creating a cuRAND generator during stream capture")
        self._rs = _np.random.RandomState(seed)

    def random_sample(self, size=None, dtype=float):
        return _wrap(self._rs.random_sample(size).astype(dtype))

    def standard_normal(self, size=None, dtype=float):
        return _wrap(self._rs.standard_normal(size).astype(dtype))

    def randint(self, low, high=None, size=None, dtype=int):
        return _wrap(self._rs.randint(low, high, size=size).astype(dtype))

    def permutation(self, n):
        return _wrap(self._rs.permutation(n))

    def get_state(self):
        return self._rs.get_state()

    def set_state(self, state):
        self._rs.set_state(state)
