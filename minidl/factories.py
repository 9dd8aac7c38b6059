"""Tensor factories: tensor, zeros, ones, full, arange, linspace, eye, randn, rand, randint and
their *_like forms. Floating results default to float32; random ones draw from the device's
seeded generator (``minidl.manual_seed``)."""
from __future__ import annotations

import math

import numpy as np

from . import backend
from ._checks import check_int, check_number
from .random import default_generator
from .tensor import Tensor, _as_array, check_fits, float32, wrapped_scalar


def _dtype(op, dtype, default=None, kinds="biuf"):
    """``dtype`` as a NumPy dtype of one of ``kinds`` (None: ``default``), or a clear error."""
    if dtype is None:
        return None if default is None else np.dtype(default)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: unknown dtype {dtype!r}; use e.g. minidl.float32, "
                        "minidl.int64") from None
    if dt.kind not in kinds:
        want = {"f": "floating point", "iu": "an integer type"}.get(kinds, "a numeric type")
        raise TypeError(f"{op}: dtype must be {want}, got {dt}")
    return dt


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (numbers, nested lists, arrays or a Tensor)."""
    return Tensor(_as_array(data, _dtype("tensor", dtype), device, copy=True),
                  requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares the array when no conversion is needed."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return Tensor(_as_array(data, dtype, device))


def from_numpy(array):
    """A tensor sharing the memory of a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def _shape(op, size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0
               for s in size):
        raise ValueError(f"{op}: size must be non-negative ints, got {size}")
    return tuple(int(s) for s in size)


def _make(op, fill, size, dtype, device, requires_grad):
    shape = _shape(op, size)
    xp = backend.array_module_for(device)
    dtype = _dtype(op, dtype, float32)
    if xp is np:
        data = fill(np, shape, dtype)
    else:
        with xp.cuda.Device(backend.get_device(device).index):
            data = fill(xp, shape, dtype)
    return Tensor(data, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _make("zeros", lambda xp, s, d: xp.zeros(s, d), size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones."""
    return _make("ones", lambda xp, s, d: xp.ones(s, d), size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """An uninitialized tensor."""
    return _make("empty", lambda xp, s, d: xp.empty(s, d), size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor filled with ``fill_value``."""
    if isinstance(fill_value, np.ndarray) and fill_value.ndim == 0:
        fill_value = fill_value.item()           # a 0-d array counts as its scalar
    if isinstance(fill_value, (bool, np.bool_)):
        dtype = np.bool_ if dtype is None else dtype
    else:
        check_number("full", "fill_value", fill_value)
    if dtype is None and isinstance(fill_value, (int, np.integer)) and not isinstance(
            fill_value, bool):
        dtype = np.int64
    if dtype is not None:
        check_fits("full", fill_value, _dtype("full", dtype), "'fill_value'")
    return _make("full", lambda xp, s, d: xp.full(s, wrapped_scalar(fill_value, d), d), (size,),
                 dtype, device, requires_grad)


def _like(op, fn, input, dtype, device, requires_grad, *args):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: 'input' must be a Tensor, got {type(input).__name__}")
    return fn(input.shape, *args, dtype=input.dtype if dtype is None else dtype,
              device=input.device if device is None else device, requires_grad=requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    return _like("zeros_like", zeros, input, dtype, device, requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    return _like("ones_like", ones, input, dtype, device, requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return _like("empty_like", empty, input, dtype, device, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return _like("full_like", full, input, dtype, device, requires_grad, fill_value)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for ints, else float32.

    As in PyTorch: a floating result has ceil((end - start) / step) values start + i * step,
    computed in float64 and then rounded to the dtype once (NumPy's float32 arange adds a
    float32 step and drifts); an integer dtype truncates start, end and step to integers
    first (so ``arange(0, 5, 1.5, dtype=int64)`` steps by 1 and a step under 1 is refused)."""
    if end is None:
        start, end = 0, start
    start, end, step = (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v
                        for v in (start, end, step))  # a 0-d array counts as its scalar
    for name, v in (("start", start), ("end", end), ("step", step)):
        check_number("arange", name, v)
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else float32
    dt = _dtype("arange", dtype)
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise ValueError(f"arange: start, end and step must be finite, got {start}, {end}, "
                         f"{step}")
    if (end - start) * step < 0:
        raise ValueError(f"arange: 'step' {step} goes away from 'end' (start {start}, end "
                         f"{end}); as in PyTorch, its sign must be that of end - start")
    integer = dt.kind in "biu"
    if integer:
        start, end, step = int(start), int(end), int(step)
    if step == 0:
        raise ValueError("arange: 'step' must be non-zero" + (
            " (an integer dtype truncates it to an integer first)" if integer else ""))
    if integer:
        data = np.arange(start, end, step, dtype=np.int64).astype(dt)
    else:
        n = max(0, math.ceil((float(end) - float(start)) / float(step)))
        data = (float(start) + np.arange(n, dtype=np.float64) * float(step)).astype(dt)
    return Tensor(backend.to_device(data, device or "cpu"), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from start to end inclusive, computed in float64 (an
    integer dtype then truncates toward zero, as PyTorch does)."""
    check_number("linspace", "start", start)
    check_number("linspace", "end", end)
    data = np.linspace(start, end, check_int("linspace", "steps", steps, 0), dtype=np.float64)
    data = data.astype(_dtype("linspace", dtype, float32))
    return Tensor(backend.to_device(data, device or "cpu"), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """Identity matrix (n x m)."""
    m = None if m is None else check_int("eye", "m", m, 0)
    data = np.eye(check_int("eye", "n", n, 0), m, dtype=_dtype("eye", dtype, float32))
    return Tensor(backend.to_device(data, device or "cpu"), requires_grad=requires_grad)


def _random(op, draw, size, dtype, device, requires_grad):
    shape = _shape(op, size)
    dtype = _dtype(op, dtype, float32, kinds="f")
    dev = backend.get_device(device)
    return Tensor(draw(default_generator(dev), shape, dtype), requires_grad=requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the seeded generator."""
    return _random("randn", lambda g, s, d: g.normal(s, d), size, dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform [0, 1) samples from the seeded generator."""
    return _random("rand", lambda g, s, d: g.uniform(s, d), size, dtype, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, requires_grad=False):
    """Integers in [low, high) from the seeded generator; ``randint(high, size)`` draws from
    [0, high), as in PyTorch. ``dtype`` (default int64) may also be floating or bool."""
    if size is None:                        # randint(high, size) or randint(high, size=...)
        if high is None:
            raise TypeError("randint: missing 'size' (randint(high, size) or "
                            "randint(low, high, size))")
        low, high, size = 0, low, high
    elif high is None:                      # randint(high, size=(...))
        low, high = 0, low
    low, high = check_int("randint", "low", low), check_int("randint", "high", high)
    dtype = _dtype("randint", dtype, np.int64, kinds="biuf")
    if high <= low:
        raise ValueError(f"randint: need low < high, got low={low}, high={high}")
    shape = _shape("randint", (size,))
    gen = default_generator(backend.get_device(device))
    draw = gen.integers(low, high, shape, dtype if dtype.kind in "iu" else np.int64)
    return Tensor(draw.astype(dtype, copy=False), requires_grad=requires_grad)


def randperm(n, *, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1 (int64, or ``dtype``)."""
    n = check_int("randperm", "n", n, 0)
    dtype = _dtype("randperm", dtype, np.int64, kinds="iuf")
    perm = default_generator(backend.get_device(device)).permutation(n)
    return Tensor(perm.astype(dtype), requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False):
    return _like("randn_like", randn, input, dtype, device, requires_grad)


def rand_like(input, dtype=None, device=None, requires_grad=False):
    return _like("rand_like", rand, input, dtype, device, requires_grad)
