"""A stand-in for CuPy on machines without a GPU: tests only, opt-in (``MINIDL_FAKE_CUDA=1``
puts this folder first on ``sys.path``; see tests/conftest.py).

It lets the ``cuda``-parametrized tests run minidl's GPU code paths on the host: arrays are a
NumPy subclass that reports device ``cuda:0``; array functions are NumPy's, with their results
kept on the "device"; ``RawModule`` compiles the CUDA source for the host with
tests/cuda_emulator.py (blocks of real threads, shared memory, barriers), so the hand-written
kernels run through minidl's own launch code. Like CuPy, it refuses to mix host and device
arrays in an operation or a function call, and reductions return 0-d device arrays, not host
scalars.

What it cannot tell: CuPy's own deviations from NumPy, real concurrency and asynchrony, speed,
memory. Passing here is a check of minidl's device plumbing, not a GPU result.
"""
import numpy as _np

__version__ = "0.0-fake"


class _Flags:
    """CuPy's ``ndarray.flags``: c_contiguous, f_contiguous and owndata only (no writeable,
    aligned, ...: code that reads those fails on a real GPU, so it fails here too)."""

    def __init__(self, a):
        f = _np.ndarray.flags.__get__(a)          # NumPy's own, under the property
        self.c_contiguous, self.f_contiguous, self.owndata = (
            f.c_contiguous, f.f_contiguous, f.owndata)

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class ndarray(_np.ndarray):
    """A NumPy array that says it lives on the GPU."""

    @property
    def device(self):
        return cuda.Device(0)

    @property
    def flags(self):
        return _Flags(self)

    @property
    def data(self):
        """CuPy's MemoryPointer, as far as minidl uses it: ``ptr``, the address of the first
        element (host memory here)."""
        return _Pointer(self.ctypes.data)

    def get(self, stream=None, order="C", out=None):
        _refuse_read("get")
        host = _np.array(self.view(_np.ndarray), copy=True, order=order)
        if out is None:
            return host
        out[...] = host
        return out

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host(ufunc.__name__, inputs)
        _refuse_out_of_range_ints(ufunc.__name__, inputs)
        tape = cuda._tape()
        if tape is not None and ufunc is _np.matmul:
            _refuse_blas()
        out = kwargs.get("out")
        if out is not None:
            _refuse_host(ufunc.__name__, out)
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        inputs, kwargs = _unwrap(inputs), _unwrap(kwargs)

        def run(**extra):
            return getattr(ufunc, method)(*inputs, **kwargs, **extra)

        if tape is not None and (out is not None or method == "at"):
            tape.append(run)                   # in place: recorded, run by the replays only
            return None if out is None else out[0] if len(out) == 1 else out
        if tape is None:
            result = _wrap(run())
        else:
            with _np.errstate(all="ignore"):     # a capture's inputs may not be computed yet
                result = _wrap(run())
        if tape is not None:
            outs = tuple(_unwrap(r) for r in (result if isinstance(result, tuple) else
                                               (result,)))
            tape.append(lambda: run(out=outs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def __setitem__(self, key, value):
        tape = cuda._tape()
        if tape is None:
            return _np.ndarray.__setitem__(self, key, value)
        if _host_arrays(value):
            _refuse_read("a host-to-device copy")
        target, key, value = self.view(_np.ndarray), _unwrap(key), _unwrap(value)
        tape.append(lambda: _np.ndarray.__setitem__(target, key, value))

    def __getitem__(self, key):
        if cuda._tape() is not None and _masks(key):
            _refuse_read("boolean-mask indexing (its result's size)")
        return _call(_getitem, (self, key), {})

    def nonzero(self):
        return _call(_np.nonzero, (self,), {})

    def fill(self, value):
        tape = cuda._tape()
        if tape is None:
            return _np.ndarray.fill(self, value)
        target = self.view(_np.ndarray)
        tape.append(lambda: target.fill(value))

    def __repr__(self):
        _refuse_read("repr")
        return "fake-cupy " + repr(self.view(_np.ndarray))


class _Pointer:
    def __init__(self, ptr):
        self.ptr = ptr


def _method(name):
    def call(self, *args, **kwargs):
        return _call(getattr(_np.ndarray, name), (self,) + args, kwargs)
    call.__name__ = name
    return call


for _name in ("sum", "mean", "max", "min", "var", "std", "prod", "argmax", "argmin", "any",
              "all", "dot", "cumsum", "clip", "round", "copy", "astype", "reshape", "ravel",
              "flatten", "repeat", "take", "transpose", "swapaxes", "squeeze"):
    setattr(ndarray, _name, _method(_name))


def _reader(name):
    def call(self, *args, **kwargs):
        _refuse_read(name)
        return getattr(_np.ndarray, name)(self, *args, **kwargs)
    call.__name__ = name
    return call


for _name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__str__"):
    setattr(ndarray, _name, _reader(_name))

# stream capture (cupy.cuda.Stream.begin_capture): what the emulation records and refuses
_BLAS = {"dot", "vdot", "inner", "tensordot", "einsum", "matmul"}
_IN_PLACE = {"copyto", "put", "place", "putmask", "fill_diagonal"}
_NO_WORK = {"empty", "empty_like"}


def _refuse_out_of_range_ints(name, inputs):
    """As CuPy 14 (NEP 50): a Python int operand that its integer array operand's dtype
    cannot hold raises OverflowError, comparisons included (NumPy 2 special-cases those)."""
    ints = [x for x in inputs if isinstance(x, int) and not isinstance(x, bool)]
    if not ints:
        return
    for a in inputs:
        if isinstance(a, _np.ndarray) and a.dtype.kind in "iu":
            info = _np.iinfo(a.dtype)
            for v in ints:
                if not info.min <= v <= info.max:
                    raise OverflowError(f"fake cupy: {name}: Python integer {v} out of bounds "
                                        f"for {a.dtype} (as CuPy 14)")


def _refuse_blas():
    raise NotImplementedError("calling cuBLAS API during stream capture is currently "
                              "unsupported (fake cupy, as CuPy)")


_SIZE_FROM_DATA = {"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract"}


def _refuse_read(what):
    """As CUDA: a host wait during capture fails, and invalidates the capture (its
    ``end_capture`` then raises too)."""
    if cuda._tape() is not None:
        cuda.get_current_stream().invalidated = True
        raise RuntimeError(f"fake cupy: {what} during stream capture needs the device to sync "
                           "with the host (cudaErrorStreamCaptureUnsupported)")


def _wrap_indices(key, shape):
    """As CuPy: integer-array indices are taken modulo their axis's size instead of raising
    (CuPy's "out-of-bounds indices" difference from NumPy)."""
    items = key if isinstance(key, tuple) else (key,)
    if not any(isinstance(k, _np.ndarray) and k.dtype.kind in "iu" and k.ndim for k in items):
        return key

    def width(k):
        if k is None or k is Ellipsis or isinstance(k, (bool, _np.bool_)):
            return 0
        if isinstance(k, _np.ndarray) and k.dtype == bool:
            return k.ndim
        return 1
    used, pos, out = sum(width(k) for k in items), 0, []
    for k in items:
        if k is Ellipsis:
            pos += max(len(shape) - used, 0)
        elif isinstance(k, _np.ndarray) and k.dtype.kind in "iu" and k.ndim and pos < len(shape):
            k = _np.mod(k.view(_np.ndarray), shape[pos]).view(type(k)) if shape[pos] else k
        pos += 0 if k is Ellipsis else width(k)
        out.append(k)
    return tuple(out)


def _getitem(a, key):
    """a[key] with CuPy's wrapped integer indices (a function of its own, so that a captured
    graph recomputes the wrapped indices at every replay)."""
    return _np.ndarray.__getitem__(a, _wrap_indices(key, a.shape))


def _masks(key):
    """Whether an index holds a boolean array of at least one dimension."""
    items = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, _np.ndarray) and k.dtype == bool and k.ndim > 0 for k in items)


def _arrays(x):
    if isinstance(x, _np.ndarray):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _arrays(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _arrays(v)


def _call(f, args, kwargs):
    """f(*args, **kwargs) with device arrays; while a stream captures, pure calls run now and
    their fresh results are recomputed into the same arrays by every replay, in-place calls
    are only recorded (a captured kernel runs only when the graph is launched)."""
    args, kwargs = _unwrap(args), _unwrap(kwargs)
    tape = cuda._tape()
    if tape is None:
        return _wrap(f(*args, **kwargs))
    name = getattr(f, "__name__", "")
    if name in _BLAS:
        _refuse_blas()
    if name in _SIZE_FROM_DATA:       # the result's size is read back from the device
        _refuse_read(name)
    if name in _IN_PLACE or kwargs.get("out") is not None:
        tape.append(lambda: f(*args, **kwargs))
        return _wrap(kwargs.get("out"))
    with _np.errstate(all="ignore"):             # a capture's inputs may not be computed yet
        result = _wrap(f(*args, **kwargs))
    if name in _NO_WORK:          # nothing to record, but like a graph's memory pool, the
        tape.append(lambda: result)   # capture keeps its allocations for the replays
        return result
    sources = list(_arrays((args, kwargs)))
    fresh = [r.view(_np.ndarray) for r in _arrays(result)
             if not any(_np.may_share_memory(r, s) for s in sources)]
    if fresh:
        def rerun():
            for target, value in zip(fresh, _arrays(_wrap(f(*args, **kwargs)))):
                target[...] = value
        tape.append(rerun)
    return result


def _refuse_host(op, values):
    for v in values:
        if type(v) is _np.ndarray and v.ndim > 0:
            raise TypeError(f"fake cupy: {op} got a host numpy.ndarray among device arrays "
                            "(CuPy refuses implicit host/device mixing)")


def _unwrap(x):
    if isinstance(x, ndarray):
        return x.view(_np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return x if isinstance(x, ndarray) else x.view(ndarray)
    if isinstance(x, _np.generic):
        return _np.asarray(x).view(ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


def _host_arrays(x):
    if type(x) is _np.ndarray:
        return x.ndim > 0
    if isinstance(x, (list, tuple)):
        return any(_host_arrays(v) for v in x)
    if isinstance(x, dict):
        return any(_host_arrays(v) for v in x.values())
    return False


def _function(f):
    def call(*args, **kwargs):
        if _host_arrays(args) or _host_arrays(kwargs):      # as CuPy: no implicit transfer
            raise TypeError(f"fake cupy: {getattr(f, '__name__', f)} got a host "
                            "numpy.ndarray (CuPy functions take device arrays; use "
                            "cupy.asarray first)")
        return _call(f, args, kwargs)
    call.__name__ = getattr(f, "__name__", "function")
    return call


def __getattr__(name):
    if name in ("cuda", "lib", "random", "_core"):    # this package's own submodules
        raise AttributeError(name)
    value = getattr(_np, name)
    if callable(value) and not isinstance(value, type):
        return _function(value)
    return value


def asarray(a, dtype=None, order=None):
    """A device array of ``a``: a device array as it is (when dtype and order allow), host
    data copied."""
    if not isinstance(a, ndarray):
        _refuse_read("a host-to-device copy")
        return _np.array(a, dtype=dtype, order=order or "K", copy=True).view(ndarray)
    return _call(_np.array, (a,), dict(dtype=dtype, order=order or "K", copy=None))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """cupy.array: a new device array (a copy of a device array too, unless copy=False:
    CuPy's array copies where asarray does not)."""
    if not isinstance(obj, ndarray):
        _refuse_read("a host-to-device copy")
        return _np.array(obj, dtype=dtype, order=order or "K", copy=True,
                         ndmin=ndmin).view(ndarray)
    return _call(_np.array, (obj,), dict(dtype=dtype, order=order or "K",
                                         copy=True if copy else None, ndmin=ndmin))


def _stable(f):
    """CuPy's sorts are always stable (and older CuPy takes no ``kind``): NumPy's default
    quicksort would order equal keys differently from a real GPU."""
    def sort(a, axis=-1, kind=None, **kwargs):
        _refuse_read(f"{f.__name__} (thrust synchronizes)")       # cupy/cupy#9126
        if kind not in (None, "stable"):
            raise NotImplementedError(f"fake cupy: {f.__name__} kind={kind!r} (CuPy sorts are "
                                      "stable and take no other kind)")
        return _function(f)(a, axis=axis, kind="stable", **kwargs)
    sort.__name__ = f.__name__
    return sort


argsort, sort = _stable(_np.argsort), _stable(_np.sort)


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order, out=out) if isinstance(a, ndarray) else _np.asarray(a)


def get_array_module(*args):
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


class RawModule:
    """Compiles ``code`` for the host (tests/cuda_emulator.HostModule)."""

    def __init__(self, code, options=(), name_expressions=()):
        from tests.cuda_emulator import HostModule
        self._module = HostModule(code, name_expressions)

    def get_function(self, name):
        return _Kernel(self._module.get_function(name))


class _Kernel:
    """A RawKernel: launches run now, or, while a stream captures, only when it replays."""

    def __init__(self, fn):
        self._fn = fn

    def __call__(self, grid, block, args, **kwargs):
        tape = cuda._tape()
        if tape is None:
            return self._fn(grid, block, args, **kwargs)
        tape.append(lambda: self._fn(grid, block, args, **kwargs))


from . import _core, cuda, lib, random  # noqa: E402

__all__ = ["ndarray", "asarray", "array", "asnumpy", "get_array_module", "RawModule",
           "_core", "cuda", "lib", "random"]
