"""Tensor: an array (NumPy or CuPy, in ``.data``) that records the operations applied to it.

The graph it records, the op contract (``Function``), grad mode and backward itself live in
``minidl.autograd``; the math behind the operators and methods lives in ``minidl.functional``.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from . import backend

_F = None   # minidl.functional, bound by it at import time (Tensor methods call it)


def _bind_functional(module):
    global _F
    _F = module


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


def _as_array(data, dtype=None, device=None, copy=False):
    """Turn ``data`` (Tensor, array, nested lists, scalar) into an array on ``device``.

    Python floats become float32 and Python ints int64 (PyTorch's defaults); arrays keep their
    dtype unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, np.generic):   # a NumPy scalar keeps its dtype
        data = np.asarray(data)
    is_array = isinstance(data, np.ndarray) or backend._is_cupy_array(data)
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
        if data.dtype != dtype:
            data, copy = data.astype(dtype), False
    if device is not None:
        moved = backend.to_device(data, device)
        copy = copy and moved is data
        data = moved
    return data.copy() if copy else data


# ---------------------------------------------------------------------------------------------
# Tensor

class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Attributes:
        data: the raw ``numpy.ndarray`` or ``cupy.ndarray``.
        grad: a Tensor holding d(output)/d(self) after ``backward`` (leaves, or ``retain_grad``).
        requires_grad: whether operations on this tensor are recorded for autograd.
        grad_fn: the Function that produced this tensor (None for leaves).
    """

    __slots__ = ("data", "_grad", "requires_grad", "grad_fn", "_out_index", "_vc",
                 "__weakref__")
    __array_priority__ = 1000   # make numpy scalars defer to Tensor's reflected operators
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        if not (isinstance(data, np.ndarray) or backend._is_cupy_array(data)):
            data = _as_array(data)
        elif data.dtype.kind not in "biuf":
            raise TypeError(f"Tensor: expected an array of numbers, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
        self._vc = [0]            # version counter, shared with views (see _version)
        self.requires_grad = False
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
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, "
                f"got dtype {self.data.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_: cannot turn off requires_grad on a non-leaf "
                               "tensor; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

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

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    # -- autograd ------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Compute gradients of this tensor with respect to every leaf that requires grad.

        Args:
            grad: d(something)/d(self); may be omitted only for one-element tensors (then 1).
            retain_graph: keep saved arrays so backward can run through this graph again.
        """
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
            if not (isinstance(g, np.ndarray) or backend._is_cupy_array(g)):
                g = np.asarray(g, dtype=self.data.dtype)
            if type(g) is not type(self.data):
                raise RuntimeError(f"backward: grad is on {backend.device_of(g)}, "
                                   f"the tensor on {self.device}")
            if g.shape != self.data.shape:
                raise RuntimeError(f"backward: grad has shape {g.shape}, expected the "
                                   f"tensor's shape {self.data.shape}")
            if g.dtype != self.data.dtype:
                g = g.astype(self.data.dtype)
        run_backward(self, g, retain_graph)

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

    # -- in-place data ops (no graph; for init and optimizers) ---------------------------------
    def _check_inplace(self, name):
        if is_grad_enabled() and self.requires_grad:
            raise RuntimeError(
                f"{name}: in-place change of a tensor that requires grad; wrap it in "
                "minidl.no_grad() (as nn.init and the optimizers do)")

    def zero_(self):
        self._check_inplace("zero_")
        self.data[...] = 0
        self._version += 1
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        if isinstance(value, Tensor) and value.data.size == 1:
            value = value.item()
        if not isinstance(value, (numbers.Number, np.generic)):
            raise TypeError(f"fill_: value must be a number, got {type(value).__name__}")
        self.data[...] = value
        self._version += 1
        return self

    def copy_(self, src):
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else src
        if not hasattr(src, "shape"):
            src = _as_array(src, dtype=self.dtype)
        if tuple(src.shape) != self.data.shape:
            raise ValueError(f"copy_: source shape {tuple(src.shape)} does not match "
                             f"destination shape {self.data.shape}")
        self.data[...] = backend.to_device(src, self.device)
        self._version += 1
        return self

    # -- operators (implemented in minidl.functional) ------------------------------------------
    def __neg__(self):
        return _F.neg(self)

    def __add__(self, other):
        return _F.add(self, other)

    def __radd__(self, other):
        return _F.add(self, other)

    def __sub__(self, other):
        return _F.sub(self, other)

    def __rsub__(self, other):
        return _F.sub(other, self)

    def __mul__(self, other):
        return _F.mul(self, other)

    def __rmul__(self, other):
        return _F.mul(self, other)

    def __truediv__(self, other):
        return _F.div(self, other)

    def __rtruediv__(self, other):
        return _F.div(other, self)

    def __pow__(self, exponent):
        return _F.pow(self, exponent)

    def __rpow__(self, base):
        return _F.pow(base, self)

    def __matmul__(self, other):
        return _F.matmul(self, other)

    def __rmatmul__(self, other):
        return _F.matmul(other, self)

    def __getitem__(self, index):
        return _F.getitem(self, index)

    def __abs__(self):
        return _F.abs(self)

    # comparisons give boolean tensors outside the graph
    def _compare(self, other, op):
        _F._utils.check_broadcast("comparison", self, other)
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = object.__hash__

    # -- methods mirroring functional ----------------------------------------------------------
    def exp(self):
        return _F.exp(self)

    def log(self):
        return _F.log(self)

    def sqrt(self):
        return _F.sqrt(self)

    def abs(self):
        return _F.abs(self)

    def clip(self, min=None, max=None):
        return _F.clip(self, min, max)

    clamp = clip

    def relu(self):
        return _F.relu(self)

    def sigmoid(self):
        return _F.sigmoid(self)

    def tanh(self):
        return _F.tanh(self)

    def softmax(self, dim=-1):
        return _F.softmax(self, dim)

    def log_softmax(self, dim=-1):
        return _F.log_softmax(self, dim)

    def sum(self, dim=None, keepdim=False):
        return _F.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return _F.mean(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return _F.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _F.min(self, dim, keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False):
        return _F.var(self, dim, unbiased, keepdim)

    def std(self, dim=None, unbiased=True, keepdim=False):
        return _F.std(self, dim, unbiased, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _F.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _F.argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return _F.reshape(self, shape[0] if len(shape) == 1 else shape)

    def view(self, *shape):
        return _F.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, dim0=None, dim1=None):
        return _F.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _F.permute(self, dims[0] if len(dims) == 1 else dims)

    def flatten(self, start_dim=0, end_dim=-1):
        return _F.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return _F.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _F.unsqueeze(self, dim)

    def expand(self, *shape):
        return _F.expand(self, shape[0] if len(shape) == 1 else shape)

    def broadcast_to(self, shape):
        return _F.broadcast_to(self, shape)

    def split(self, split_size_or_sections, dim=0):
        return _F.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _F.chunk(self, chunks, dim)

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
from .autograd import is_grad_enabled, run_backward  # noqa: E402
