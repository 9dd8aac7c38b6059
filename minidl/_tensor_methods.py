"""The operators and the methods of ``Tensor`` that mirror ``minidl.functional`` (``x + y``,
``x.sum(1)``, ``x.flip(0)``...): each calls the function of the same name, which holds the math.
``Tensor`` inherits them from ``TensorMethods``, so that ``tensor.py`` keeps the tensor itself
(its data, dtype, device, autograd state and in-place data ops).
"""
from __future__ import annotations

_F = None   # minidl.functional, bound by it at import time (through tensor._bind_functional)


def _bind_functional(module):
    global _F
    _F = module


class TensorMethods:
    """Operators and functional methods of ``minidl.Tensor`` (see the module docstring)."""

    __slots__ = ()

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

    # bitwise operators: bool and integer tensors only, outside the graph
    def __invert__(self):
        return _F.bitwise_not(self)

    def __and__(self, other):
        return _F.bitwise_and(self, other)

    __rand__ = __and__

    def __or__(self, other):
        return _F.bitwise_or(self, other)

    __ror__ = __or__

    def __xor__(self, other):
        return _F.bitwise_xor(self, other)

    __rxor__ = __xor__

    # comparisons give boolean tensors outside the graph; == and != with something that is no
    # tensor, number or array are False / True (Python's fallback), as in PyTorch
    def __lt__(self, other):
        return _F.lt(self, other)

    def __le__(self, other):
        return _F.le(self, other)

    def __gt__(self, other):
        return _F.gt(self, other)

    def __ge__(self, other):
        return _F.ge(self, other)

    def __eq__(self, other):
        return _F.eq(self, other) if _F.comparison._is_operand(other) else NotImplemented

    def __ne__(self, other):
        return _F.ne(self, other) if _F.comparison._is_operand(other) else NotImplemented

    __hash__ = object.__hash__

    # -- methods mirroring functional ----------------------------------------------------------
    def add(self, other, *, alpha=1):
        return _F.add(self, other, alpha=alpha)

    def sub(self, other, *, alpha=1):
        return _F.sub(self, other, alpha=alpha)

    def mul(self, other):
        return _F.mul(self, other)

    def div(self, other):
        return _F.div(self, other)

    def neg(self):
        return _F.neg(self)

    def matmul(self, other):
        return _F.matmul(self, other)

    def nonzero(self, *, as_tuple=False):
        return _F.nonzero(self, as_tuple=as_tuple)

    def argwhere(self):
        return _F.argwhere(self)

    def logical_not(self):
        return _F.logical_not(self)

    def logical_and(self, other):
        return _F.logical_and(self, other)

    def logical_or(self, other):
        return _F.logical_or(self, other)

    def logical_xor(self, other):
        return _F.logical_xor(self, other)

    @property
    def mT(self):
        """The last two axes swapped (a batch of matrices, transposed)."""
        if self.ndim < 2:
            raise ValueError(f"mT: needs at least 2 dimensions, got a {self.ndim}-D tensor")
        return _F.transpose(self, -2, -1)

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

    def softmax(self, dim, dtype=None):
        return _F.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        return _F.log_softmax(self, dim, dtype=dtype)

    def sum(self, dim=None, keepdim=False, *, dtype=None):
        return _F.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim=False, *, dtype=None):
        return _F.mean(self, dim, keepdim, dtype=dtype)

    def max(self, dim=None, keepdim=False):
        return _F.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _F.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return _F.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _F.amin(self, dim, keepdim)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        return _F.prod(self, dim, keepdim, dtype=dtype)

    def logsumexp(self, dim, keepdim=False):
        return _F.logsumexp(self, dim, keepdim)

    def cumsum(self, dim, *, dtype=None):
        return _F.cumsum(self, dim, dtype=dtype)

    def norm(self, p="fro", dim=None, keepdim=False):
        return _F.norm(self, p, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return _F.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _F.any(self, dim, keepdim)

    def sort(self, dim=-1, descending=False, stable=False):
        return _F.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return _F.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return _F.topk(self, k, dim, largest, sorted)

    def eq(self, other):
        return _F.eq(self, other)

    def ne(self, other):
        return _F.ne(self, other)

    def lt(self, other):
        return _F.lt(self, other)

    def le(self, other):
        return _F.le(self, other)

    def gt(self, other):
        return _F.gt(self, other)

    def ge(self, other):
        return _F.ge(self, other)

    def isnan(self):
        return _F.isnan(self)

    def isinf(self):
        return _F.isinf(self)

    def isfinite(self):
        return _F.isfinite(self)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _F.isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _F.allclose(self, other, rtol, atol, equal_nan)

    def equal(self, other):
        return _F.equal(self, other)

    def pow(self, exponent):
        return _F.pow(self, exponent)

    def clone(self):
        return _F.clone(self)

    def contiguous(self):
        return _F.contiguous(self)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _F.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _F.std(self, dim, unbiased, keepdim, correction=correction)

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

    def expand_as(self, other):
        return _F.expand(self, other.shape)

    def reshape_as(self, other):
        return _F.reshape(self, other.shape)

    def view_as(self, other):
        return _F.reshape(self, other.shape)

    def t(self):
        """The transpose of a matrix; a 0-d or 1-d tensor as it is (PyTorch's ``t()``)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got {self.ndim} "
                             f"(shape {self.shape}); use transpose(dim0, dim1) or permute")
        return _F.transpose(self)

    def split(self, split_size_or_sections, dim=0):
        return _F.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _F.chunk(self, chunks, dim)

    def flip(self, *dims):
        if not dims:
            raise TypeError("flip: missing the dims to flip (x.flip(0), x.flip(0, 1))")
        return _F.flip(self, dims[0] if len(dims) == 1 else dims)

    def roll(self, shifts, dims=None):
        return _F.roll(self, shifts, dims)

    def repeat(self, *sizes):
        return _F.repeat(self, *sizes)

    def tile(self, *dims):
        return _F.tile(self, dims[0] if len(dims) == 1 else dims)

    def unbind(self, dim=0):
        return _F.unbind(self, dim)

    def movedim(self, source, destination):
        return _F.movedim(self, source, destination)

    moveaxis = movedim

    def narrow(self, dim, start, length):
        return _F.narrow(self, dim, start, length)

    def masked_fill(self, mask, value):
        return _F.masked_fill(self, mask, value)

    def gather(self, dim, index):
        return _F.gather(self, dim, index)

    def tril(self, diagonal=0):
        return _F.tril(self, diagonal)

    def triu(self, diagonal=0):
        return _F.triu(self, diagonal)

    def log1p(self):
        return _F.log1p(self)

    def expm1(self):
        return _F.expm1(self)

    def square(self):
        return _F.square(self)

    def rsqrt(self):
        return _F.rsqrt(self)

    def reciprocal(self):
        return _F.reciprocal(self)

    def sin(self):
        return _F.sin(self)

    def cos(self):
        return _F.cos(self)

    def sign(self):
        return _F.sign(self)

    def lerp(self, end, weight):
        return _F.lerp(self, end, weight)
