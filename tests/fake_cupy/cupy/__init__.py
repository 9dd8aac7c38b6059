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


class ndarray(_np.ndarray):
    """A NumPy array that says it lives on the GPU."""

    @property
    def device(self):
        return cuda.Device(0)

    def get(self, stream=None, order="C", out=None):
        host = _np.array(self.view(_np.ndarray), copy=True, order=order)
        if out is None:
            return host
        out[...] = host
        return out

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host(ufunc.__name__, inputs)
        out = kwargs.get("out")
        if out is not None:
            _refuse_host(ufunc.__name__, out)
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        result = getattr(ufunc, method)(*(_unwrap(x) for x in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __repr__(self):
        return "fake-cupy " + repr(self.view(_np.ndarray))


def _method(name):
    def call(self, *args, **kwargs):
        return _wrap(getattr(self.view(_np.ndarray), name)(*_unwrap(args), **_unwrap(kwargs)))
    call.__name__ = name
    return call


for _name in ("sum", "mean", "max", "min", "var", "std", "prod", "argmax", "argmin", "any",
              "all", "dot", "cumsum", "clip", "round"):
    setattr(ndarray, _name, _method(_name))


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
        return _wrap(f(*_unwrap(args), **_unwrap(kwargs)))
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
    copy = None if isinstance(a, ndarray) else True
    return _np.array(_unwrap(a), dtype=dtype, order=order or "K", copy=copy).view(ndarray)


array = asarray


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
        return self._module.get_function(name)


from . import _core, cuda, lib, random  # noqa: E402

__all__ = ["ndarray", "asarray", "array", "asnumpy", "get_array_module", "RawModule",
           "_core", "cuda", "lib", "random"]
