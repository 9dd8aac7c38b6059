"""Tensor, Function and the reverse-mode autograd engine.

A ``Tensor`` wraps one array (NumPy or CuPy) in ``.data``. Every differentiable operation is a
``Function``: ``forward`` maps input arrays to output arrays and saves what ``backward`` needs;
``backward`` maps the gradients of the outputs to the gradients of the inputs. Calling a Function
on tensors records it as the ``grad_fn`` of its outputs whenever an input requires grad, which
builds the graph as the program runs (define-by-run).

``Tensor.backward`` walks that graph once in reverse topological order, with an explicit stack
(no recursion, so a chain of 10,000 ops works), sums the gradients that reach a node along
several paths before calling its backward, accumulates into the ``.grad`` of leaves as PyTorch
does, and then frees each node's saved arrays unless ``retain_graph=True``.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import backend

_F = None   # minidl.functional, bound by it at import time (Tensor methods call it)


def _bind_functional(module):
    global _F
    _F = module


# ---------------------------------------------------------------------------------------------
# grad mode: the one piece of global state

_grad_enabled = True


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _grad_enabled


class _GradMode:
    _value = True

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._value

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        import functools

        mode = type(self)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with mode():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator: ops inside record no graph (inference, optimizer steps)."""
    _value = False


class enable_grad(_GradMode):
    """Context manager / decorator: turn recording back on inside a ``no_grad`` block."""
    _value = True


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

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_out_index", "__weakref__")
    __array_priority__ = 1000   # make numpy scalars defer to Tensor's reflected operators
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        if not (isinstance(data, np.ndarray) or backend._is_cupy_array(data)):
            data = _as_array(data)
        self.data = data
        self.grad = None
        self.grad_fn = None
        self._out_index = 0
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
        """A new leaf sharing the data, cut from the graph."""
        return Tensor(self.data)

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
        if _grad_enabled and self.requires_grad:
            raise RuntimeError(
                f"{name}: in-place change of a tensor that requires grad; wrap it in "
                "minidl.no_grad() (as nn.init and the optimizers do)")

    def zero_(self):
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data[...] = value
        return self

    def copy_(self, src):
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else src
        if tuple(src.shape) != self.data.shape:
            raise ValueError(f"copy_: source shape {tuple(src.shape)} does not match "
                             f"destination shape {self.data.shape}")
        self.data[...] = backend.to_device(src, self.device)
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

    def var(self, dim=None, keepdim=False, unbiased=True):
        return _F.var(self, dim, keepdim, unbiased)

    def std(self, dim=None, keepdim=False, unbiased=True):
        return _F.std(self, dim, keepdim, unbiased)

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


# ---------------------------------------------------------------------------------------------
# Function: the op contract

class Function:
    """Base class of every differentiable operation; subclass it to write your own op.

    Write ``forward(self, *arrays)`` returning an array (or a tuple of arrays) and
    ``backward(self, *grad_outputs)`` returning one gradient array (or None) per input, in
    input order. Keep what backward needs with ``self.save_for_backward(...)`` (read it back as
    ``self.saved``); ``self.needs_input_grad[i]`` tells whether input ``i`` wants a gradient.
    Hyperparameters go to ``__init__``. Inputs may be Tensors or Python numbers (numbers reach
    ``forward`` unchanged and get no gradient). Call an instance on inputs: ``MyOp()(x, y)``.
    """

    needs_input_grad = ()
    saved = ()
    _inputs = None
    _retained = None

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def __call__(self, *inputs):
        arrays = []
        first = None
        needs = []
        record = False
        for x in inputs:
            if isinstance(x, Tensor):
                a = x.data
                if first is None:
                    first = a
                elif type(a) is not type(first):
                    raise RuntimeError(
                        f"{type(self).__name__}: inputs are on different devices "
                        f"({backend.device_of(first)} and {backend.device_of(a)}); "
                        "move them to one device with .to(device)")
                arrays.append(a)
                need = _grad_enabled and x.requires_grad
                record = record or need
                needs.append(need)
            else:
                arrays.append(x)
                needs.append(False)
        self.needs_input_grad = tuple(needs)
        outputs = self.forward(*arrays)
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        if any(isinstance(y, np.generic) for y in outputs):   # NumPy reductions give scalars
            outputs = tuple(np.asarray(y) if isinstance(y, np.generic) else y for y in outputs)
        if record:
            self._inputs = inputs
            self._out_meta = tuple((y.shape, y.dtype) for y in outputs)
            results = []
            for i, y in enumerate(outputs):
                t = Tensor.__new__(Tensor)
                t.data, t.grad, t.grad_fn, t._out_index, t.requires_grad = y, None, self, i, True
                results.append(t)
        else:
            self.saved = ()
            results = [Tensor(y) for y in outputs]
        return results[0] if single else tuple(results)

    def _release(self):
        self.saved = None
        self._inputs = None


_FREED_MSG = (
    "backward: trying to backward through the graph a second time (or through a graph that a "
    "previous backward already freed); pass retain_graph=True to the first backward if you "
    "need to run backward through the same graph again")


def _topological_order(root):
    """Function nodes reachable from ``root``, each before every node it depends on."""
    order = []
    visited = {root}
    stack = [(root, _parents(root))]
    while stack:
        node, parents = stack[-1]
        if parents:
            p = parents.pop()
            if p not in visited:
                visited.add(p)
                stack.append((p, _parents(p)))
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def _parents(fn):
    if fn._inputs is None:
        raise RuntimeError(_FREED_MSG)
    return [x.grad_fn for x, need in zip(fn._inputs, fn.needs_input_grad)
            if need and x.grad_fn is not None]


def _accumulate_grad(t, g):
    """Add ``g`` into ``t.grad`` (a fresh array, so no two tensors ever share a grad buffer)."""
    if t.grad is None:
        t.grad = Tensor(g.copy())
    else:
        t.grad = Tensor(t.grad.data + g)


def run_backward(root, grad, retain_graph=False):
    """Backpropagate ``grad`` (an array shaped like ``root``) through the graph of ``root``."""
    fn0 = root.grad_fn
    if fn0 is None:
        _accumulate_grad(root, grad)
        return
    pending = {fn0: [None] * len(fn0._out_meta)}
    pending[fn0][root._out_index] = grad
    leaf_grads = {}
    for fn in _topological_order(fn0):
        gys = pending.pop(fn, None)
        if gys is None:
            continue
        if fn._retained:
            for i, ref in fn._retained.items():
                t = ref()
                if t is not None and gys[i] is not None:
                    _accumulate_grad(t, gys[i])
        if any(g is None for g in gys):   # multi-output op, only some outputs used
            xp = backend.xp_of(next(g for g in gys if g is not None))
            gys = [xp.zeros(*fn._out_meta[i]) if g is None else g for i, g in enumerate(gys)]
        gxs = fn.backward(*gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn._inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(gxs)} gradients for "
                f"{len(fn._inputs)} inputs")
        for x, need, gx in zip(fn._inputs, fn.needs_input_grad, gxs):
            if not need or gx is None:
                continue
            if gx.shape != x.data.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape {gx.shape} "
                    f"for an input of shape {x.data.shape}")
            if gx.dtype != x.data.dtype:   # e.g. float32 input promoted by a float64 operand
                gx = gx.astype(x.data.dtype)
            parent = x.grad_fn
            if parent is None:
                prev = leaf_grads.get(id(x))
                leaf_grads[id(x)] = (x, gx if prev is None else prev[1] + gx)
            else:
                slots = pending.get(parent)
                if slots is None:
                    slots = pending[parent] = [None] * len(parent._out_meta)
                k = x._out_index
                slots[k] = gx if slots[k] is None else slots[k] + gx
        if not retain_graph:
            fn._release()
    for x, g in leaf_grads.values():
        _accumulate_grad(x, g)
