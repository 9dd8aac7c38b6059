"""Tensor: an array (NumPy or CuPy, in ``.data``) that records the operations applied to it.

The graph it records, the op contract (``Function``), grad mode and backward itself live in
``minidl.autograd``; the math behind the operators and methods lives in ``minidl.functional``.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from . import backend

from ._tensor_inplace import TensorInplace
from ._tensor_methods import TensorMethods
from ._tensor_methods import _bind_functional as _bind_methods

_F = None   # minidl.functional, bound by it at import time (Tensor methods call it)


def _bind_functional(module):
    global _F
    _F = module
    _bind_methods(module)


# ---------------------------------------------------------------------------------------------
# dtypes

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
_DEFAULT_FLOAT = float32


def _is_float(dtype):
    return np.dtype(dtype).kind == "f"


def is_real(x):
    """Whether ``x`` is a real Python or NumPy number, not a bool (np.float32(0.1) counts)."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def check_fits(op, values, dtype, what="value"):
    """Refuse Python numbers an integer ``dtype`` cannot hold, as PyTorch does (NumPy wraps
    300 into uint8 as 44 and NaN into int64 as -2**63): NaN and infinities; for a signed type
    anything outside its range; for an unsigned one floats outside [0, max] and integers
    outside [-max, max] (a negative int wraps, as in PyTorch: -1 is 255 in uint8)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        return
    a = np.asarray(values)
    if a.size == 0 or a.dtype.kind == "b":
        return
    info = np.iinfo(dtype)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{op}: a {what} of NaN or infinity cannot be converted to "
                             f"{dtype}")
        lo = 0 if dtype.kind == "u" else info.min
    else:
        lo = -int(info.max) if dtype.kind == "u" else info.min
    bad = a[(a < lo) | (a > info.max)]
    if bad.size:
        raise ValueError(f"{op}: {what} {bad.flat[0].item()!r} cannot be converted to {dtype} "
                         f"without overflow (accepted: {lo}..{info.max}"
                         f"{', a negative int wraps' if lo < 0 and dtype.kind == 'u' else ''})")


def wrapped_scalar(value, dtype):
    """A Python int for an integer ``dtype`` as that dtype's scalar, wrapped as PyTorch wraps
    it (-1 into uint8 is 255; NumPy raises OverflowError); other values as they are."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and isinstance(value, (int, np.integer)) and not isinstance(
            value, (bool, np.bool_)):
        return np.array(int(value), np.int64).astype(dtype)[()]
    return value


def _as_array(data, dtype=None, device=None, copy=False):
    """Turn ``data`` (Tensor, array, nested lists, scalar) into an array on ``device``.

    Python floats become float32 and Python ints int64 (PyTorch's defaults); arrays keep their
    dtype unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, np.generic):   # a NumPy scalar keeps its dtype
        data = np.asarray(data)
    is_array = backend.is_array(data)
    if not is_array:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__}: {exc}")
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(
                f"tensor: expected numbers, nested lists of numbers or an array, "
                f"got {type(data).__name__} with dtype {arr.dtype}")
        if arr.dtype == np.uint64 and dtype is None:      # an int past int64's range
            raise OverflowError(f"tensor: {data!r} does not fit int64 (PyTorch's integer "
                                "type); pass dtype=minidl.float64 for large values")
        if dtype is None and arr.dtype.kind == "f":
            arr = arr.astype(_DEFAULT_FLOAT)
        elif dtype is None and arr.dtype.kind in "iu":
            arr = arr.astype(int64)
        data, copy = arr, False
    if dtype is not None:
        dtype = np.dtype(dtype)
        if not is_array:
            check_fits("tensor", data, dtype)
        if data.dtype != dtype:
            data, copy = data.astype(dtype), False
    if device is not None:
        moved = backend.to_device(data, device)
        copy = copy and moved is data
        data = moved
    return data.copy() if copy else data


# ---------------------------------------------------------------------------------------------
# Tensor

class Tensor(TensorInplace, TensorMethods):
    """An n-dimensional array that can record the operations applied to it.

    Attributes:
        data: the raw ``numpy.ndarray`` or ``cupy.ndarray``.
        grad: a Tensor holding d(output)/d(self) after ``backward`` (leaves, or ``retain_grad``).
        requires_grad: whether operations on this tensor are recorded for autograd.
        grad_fn: the Function that produced this tensor (None for leaves).
    """

    __slots__ = ("data", "_grad", "_requires_grad", "grad_fn", "_out_index", "_vc",
                 "_hooks", "__weakref__")         # _hooks: a leaf's (see register_hook)
    __array_priority__ = 1000   # make numpy scalars defer to Tensor's reflected operators
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        if not (isinstance(data, np.ndarray) or backend._is_cupy_array(data)):
            data = _as_array(data)
        elif data.dtype.kind not in "biuf":
            raise TypeError(f"Tensor: expected an array of numbers, got dtype {data.dtype}")
        elif not data.dtype.isnative:       # big-endian data (from a file): native order,
            data = data.astype(data.dtype.newbyteorder("="))   # so its dtype is minidl's
        self.data = data
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._vc = [0]            # version counter, shared with views (see _version)
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- basic properties ----------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def T(self):
        return _F.transpose(self)

    def size(self, dim=None):
        """The shape (PyTorch's ``size()``), or the length of dimension ``dim``."""
        if dim is None:
            return self.data.shape
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not (
                -self.ndim <= dim < self.ndim):
            raise IndexError(f"size: dim {dim!r} is out of range for a tensor with {self.ndim} "
                             f"dimension(s)")
        return self.data.shape[dim]

    def numel(self):
        """Number of elements."""
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: the host data (a GPU tensor must be moved with ``.cpu()``)."""
        if backend._is_cupy_array(self.data):
            raise TypeError("np.asarray: the tensor is on a GPU; use t.cpu() or t.numpy()")
        a = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return np.array(a, copy=True) if copy else a

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place (only floating-point tensors can require grad)."""
        self.requires_grad = requires_grad
        return self

    @property
    def requires_grad(self):
        """Whether operations on this tensor are recorded for autograd. Setting it is
        ``requires_grad_``: only floating-point tensors can require grad, and a non-leaf
        cannot stop (its graph would be cut silently; ``detach()`` it)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad):
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, "
                f"got dtype {self.data.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_: cannot turn off requires_grad on a non-leaf "
                               "tensor; use .detach()")
        self._requires_grad = bool(requires_grad)

    # -- conversion ----------------------------------------------------------------------------
    def item(self):
        """The value of a one-element tensor as a Python number (syncs with the device)."""
        if self.data.size != 1:
            raise ValueError(
                f"item: only one-element tensors can be converted to a Python number, "
                f"got shape {self.data.shape}")
        if backend._is_cupy_array(self.data):
            backend.refuse_in_capture("Tensor.item()")
        backend.check_deferred()
        return self.data.reshape(()).item()

    def numpy(self):
        """A host NumPy copy of the data."""
        return np.array(backend.as_numpy(self.data), copy=True)

    def tolist(self):
        return backend.as_numpy(self.data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"bool: the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def detach(self):
        """A new leaf sharing the data (and its version counter), cut from the graph."""
        t = Tensor(self.data)
        t._vc = self._vc
        return t

    def detach_(self):
        """Cut this tensor itself from the graph: a leaf that does not require grad."""
        self.grad_fn, self._out_index, self._requires_grad = None, 0, False
        return self

    @property
    def grad(self):
        """d(output)/d(self) after ``backward`` (leaves, or ``retain_grad``), else None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        """Assigning a gradient checks it, as PyTorch does: the next backward adds into it."""
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: expected a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape or value.dtype != self.dtype or (
                    value.device != self.device):
                raise ValueError(
                    f"grad: the gradient must match the tensor ({self.shape}, {self.dtype}, "
                    f"{self.device}), got ({value.shape}, {value.dtype}, {value.device})")
        self._grad = value

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has had (``fill_``, ``copy_``,
        ``zero_``, optimizer steps), counted together with every view of it (reshape,
        transpose, basic indexing, detach) as in PyTorch; backward checks it (autograd)."""
        return self._vc[0]

    @_version.setter
    def _version(self, value):
        self._vc[0] = value

    def to(self, device=None, dtype=None):
        """Move to ``device`` and/or cast to ``dtype`` (differentiable). ``t.to("cuda")``,
        ``t.to(minidl.float64)`` and ``t.to("cpu", float32)`` all work."""
        if dtype is None and device is not None and not isinstance(device, (str, backend.Device)):
            device, dtype = None, device
        out = self
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            out = _F.cast(out, dtype)
        if device is not None:
            dev = backend.get_device(device)
            if dev != out.device:
                out = _F.to_device(out, dev)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def float(self):
        return self.to(dtype=float32)

    def double(self):
        return self.to(dtype=float64)

    def long(self):
        return self.to(dtype=int64)

    def int(self):
        return self.to(dtype=int32)

    def half(self):
        return self.to(dtype=float16)

    def bool(self):
        return self.to(dtype=bool_)

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    # -- new tensors like this one (same dtype and device unless given) -----------------------
    def _new(self, op, fill, size, dtype, device, requires_grad):
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                   for n in size):
            raise ValueError(f"{op}: size must be non-negative ints, got {size}")
        shape = tuple(int(n) for n in size)
        try:
            dtype = self.data.dtype if dtype is None else np.dtype(dtype)
        except TypeError:
            raise TypeError(f"{op}: 'dtype' must be a dtype such as minidl.float32, got "
                            f"{dtype!r}") from None
        dev = self.device if device is None else backend.get_device(device)
        xp = backend.array_module_for(dev)
        if xp is np:
            data = fill(np, shape, dtype)
        else:
            with xp.cuda.Device(dev.index):
                data = fill(xp, shape, dtype)
        return Tensor(data, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        """Zeros of ``size`` with this tensor's dtype and device (unless given)."""
        return self._new("new_zeros", lambda xp, s, d: xp.zeros(s, d), size, dtype, device,
                         requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        """Ones of ``size`` with this tensor's dtype and device (unless given)."""
        return self._new("new_ones", lambda xp, s, d: xp.ones(s, d), size, dtype, device,
                         requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        """An uninitialized tensor of ``size`` with this tensor's dtype and device."""
        return self._new("new_empty", lambda xp, s, d: xp.empty(s, d), size, dtype, device,
                         requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        """``fill_value`` everywhere, with this tensor's dtype and device (unless given)."""
        if not isinstance(fill_value, (numbers.Real, np.generic)):
            raise TypeError(f"new_full: 'fill_value' must be a number, got "
                            f"{type(fill_value).__name__}")
        def fill(xp, shape, dtype):
            check_fits("new_full", fill_value, dtype, "'fill_value'")
            return xp.full(shape, wrapped_scalar(fill_value, dtype), dtype)
        return self._new("new_full", fill, (size,), dtype, device, requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        """A copy of ``data`` with this tensor's dtype and device (unless given)."""
        data = _as_array(data, self.data.dtype if dtype is None else dtype,
                         self.device if device is None else device, copy=True)
        return Tensor(data, requires_grad=requires_grad)

    # -- autograd ------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False, inputs=None, create_graph=False):
        """Compute gradients of this tensor with respect to every leaf that requires grad.

        Args:
            grad: d(something)/d(self); may be omitted only for one-element tensors (then 1).
            retain_graph: keep saved arrays so backward can run through this graph again.
            inputs: None (the leaves and ``retain_grad`` tensors get their gradients), or a
                Tensor or list/tuple of Tensors: only their ``.grad`` is written (leaves or
                tensors inside the graph) and only the part of the graph leading to them runs.
            create_graph: must be False (backward is not itself differentiated).
        """
        refuse_create_graph("backward", create_graph)
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no grad_fn; "
                "set requires_grad=True on the inputs you want gradients for")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be omitted only for one-element outputs, got shape "
                    f"{self.data.shape}; pass grad= with that shape (or reduce to a scalar)")
            g = backend.xp_of(self.data).ones_like(self.data)
        else:
            g = grad.data if isinstance(grad, Tensor) else grad
            if not backend.is_array(g):
                g = np.asarray(g, dtype=self.data.dtype)
            if type(g) is not type(self.data):
                raise RuntimeError(f"backward: grad is on {backend.device_of(g)}, "
                                   f"the tensor on {self.device}")
            if g.shape != self.data.shape:
                raise RuntimeError(f"backward: grad has shape {g.shape}, expected the "
                                   f"tensor's shape {self.data.shape}")
            if g.dtype != self.data.dtype:
                g = g.astype(self.data.dtype)
        if inputs is None:
            run_backward(self, g, retain_graph)
        else:
            backward_into("Tensor.backward", [self], [g], retain_graph, inputs)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: tensor does not require grad")
        if self.grad_fn is not None:
            fn = self.grad_fn
            if fn._retained is None:
                fn._retained = {}
            fn._retained[self._out_index] = weakref.ref(self)
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` with d(output)/d(self) each time backward computes it.

        ``grad`` is complete (summed over every path) when the hook runs; the hook may return
        a Tensor of the same shape, dtype and device to use instead, or None. On a leaf the
        hooks run before the gradient is added into ``.grad``; on a non-leaf before
        ``retain_grad`` keeps it and before it flows on. Several hooks run in registration
        order, each seeing the previous one's result. Nothing is read back from the device.

        Returns:
            A handle; ``handle.remove()`` unregisters the hook.
        """
        return register_tensor_hook(self, hook)

    def __repr__(self):
        body = np.array2string(backend.as_numpy(self.data), separator=", ", precision=4,
                               prefix="tensor(")
        extra = []
        if self.device.type != "cpu":
            extra.append(f"device='{self.device}'")
        if self.data.dtype not in (float32, int64, bool_):
            extra.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extra.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"


# The autograd engine creates Tensors, so it is imported once Tensor exists.
from .autograd import run_backward  # noqa: E402
from .autograd_api import backward_into, refuse_create_graph  # noqa: E402
from .hooks import register_tensor_hook  # noqa: E402
