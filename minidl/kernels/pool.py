"""A bounded pool of host buffers that outlive one call: a conv's im2col columns, kept from its
forward for its backward.

Why a pool: a fresh 80 MB ``np.empty`` is mmap'd and page-faulted in while it is filled (about
as slow as filling it) and unmapped again when freed, every training step. A buffer given back
here is lent again to the next request from the same owner (a conv's weight array) for the same
dtype and about the same size, so each layer reuses its own buffer step after step. Keying by
owner means that the buffers of a model that is dropped go with it, instead of lingering.

Why a bound: a network's worth of columns is large (ResNet-20 at batch 128: 0.86 GB). The
bytes lent out plus the bytes held free never exceed ``limit`` (1 GiB unless ``set_limit`` says
otherwise; the oldest free buffers are dropped first to make room). A request that does not fit
gets None, and the caller falls back to what it does without the pool (the conv recomputes its
columns in backward). So does a request under ``min_bytes`` (1 MiB): such a buffer fits in the
caches, recomputing it costs microseconds, and keeping it would only add memory (for small
layers, e.g. the DenseNets of the tests, in proportion to depth). A buffer that is lent and
then dropped without being given back (a graph freed without a backward) stops counting as lent
when it is garbage collected.

On the GPU ``take`` returns None: CuPy's im2col kernel recomputes columns at memory speed, so
keeping them would only cost device memory.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from .. import backend
from .._checks import check_int

_DEFAULT_LIMIT = 1 << 30
_MIN_BYTES = 1 << 20


class _Pool:
    def __init__(self, limit, min_bytes):
        self.limit, self.min_bytes = limit, min_bytes
        self.free = []              # (owner id, flat array), oldest first
        self.owners = {}            # owner id -> weakref.finalize dropping its free buffers
        self.lent = {}              # id(flat) -> weakref.finalize un-counting it if dropped
        self.lent_bytes = 0
        self.lock = threading.RLock()   # re-entrant: a finalizer may run inside take()

    def free_bytes(self):
        return sum(b.nbytes for _, b in self.free)

    def _forget_lent(self, key, nbytes):
        with self.lock:
            if self.lent.pop(key, None) is not None:
                self.lent_bytes -= nbytes

    def _forget_owner(self, owner):
        with self.lock:
            self.owners.pop(owner, None)
            self.free = [(o, b) for o, b in self.free if o != owner]

    def take(self, shape, dtype, owner):
        n = 1
        for s in shape:
            n *= s
        dtype = np.dtype(dtype)
        nbytes = n * dtype.itemsize
        key = id(owner)
        with self.lock:
            if nbytes < self.min_bytes or self.lent_bytes + nbytes > self.limit:
                return None
            fits = [k for k, (o, b) in enumerate(self.free)
                    if o == key and b.dtype == dtype and n <= b.size <= 2 * n]
            if fits:
                flat = self.free.pop(min(fits, key=lambda k: self.free[k][1].size))[1]
            else:
                while self.free and self.lent_bytes + self.free_bytes() + nbytes > self.limit:
                    self.free.pop(0)
                flat = np.empty(max(n, 1), dtype)
            if key not in self.owners:
                self.owners[key] = weakref.finalize(owner, self._forget_owner, key)
            self.lent[id(flat)] = (key, weakref.finalize(flat, self._forget_lent, id(flat),
                                                         flat.nbytes))
            self.lent_bytes += flat.nbytes
        return flat[:n].reshape(shape)

    def give(self, array):
        flat = array if array.base is None else array.base
        with self.lock:
            entry = self.lent.pop(id(flat), None)
            if entry is None:
                raise ValueError("pool: giving back an array the pool did not lend")
            owner, fin = entry
            fin.detach()
            self.lent_bytes -= flat.nbytes
            if owner in self.owners:        # else the owner died while the buffer was lent
                self.free.append((owner, flat))


_pool = _Pool(_DEFAULT_LIMIT, _MIN_BYTES)


def take(shape, dtype, owner):
    """An uninitialized C-contiguous ``shape`` array lent by the pool for ``owner`` (any
    weak-referenceable object whose life bounds the buffer's reuse, e.g. the weight array), or
    None when the pool has no room left or ``owner`` is a GPU array. Give it back with
    ``give`` when done; until then it belongs to the caller alone."""
    if not isinstance(owner, np.ndarray) or backend._is_cupy_array(owner):
        return None
    return _pool.take(tuple(shape), dtype, owner)


def give(array):
    """Return an array that ``take`` lent; the pool may lend its memory again."""
    _pool.give(array)


def stats():
    """(bytes lent out, bytes held free, limit) of the host pool."""
    with _pool.lock:
        return _pool.lent_bytes, _pool.free_bytes(), _pool.limit


def set_limit(nbytes, min_bytes=_MIN_BYTES):
    """Bound the pool's lent plus free bytes (0 turns keeping off) and set the smallest
    request it serves; drops the free buffers. Returns the previous (limit, min_bytes)."""
    nbytes = check_int("pool.set_limit", "nbytes", nbytes, 0)
    min_bytes = check_int("pool.set_limit", "min_bytes", min_bytes, 0)
    with _pool.lock:
        old = _pool.limit, _pool.min_bytes
        _pool.limit, _pool.min_bytes, _pool.free = nbytes, min_bytes, []
    return old


def release():
    """Drop the pool's free buffers (lent ones come back to it later as usual)."""
    with _pool.lock:
        _pool.free = []
