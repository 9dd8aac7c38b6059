"""``clamp`` with tensor bounds (PyTorch's ``torch.clamp(x, min=lo, max=hi)`` with Tensors):
y = min(max(x, lo), hi), every operand broadcast together, each bound differentiable. Number
bounds take ``elementwise.Clip``, the fast path."""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from ._utils import check_broadcast, sum_to


class ClampBounds(Function):
    """y = min(max(x, lo), hi) with array bounds (either may be absent).

    Gradient, as PyTorch gives it: gx = gy where lo <= x <= hi; glo = gy where x < lo < hi;
    ghi = gy where max(x, lo) > hi (x > hi, or lo > hi: then the result is hi everywhere);
    each summed back to its operand's shape.
    """

    def __init__(self, has_lo, has_hi):
        self.has_lo, self.has_hi = has_lo, has_hi

    def _lo_hi(self, bounds):
        """(lo, hi) from the bound arrays given, None for an absent one."""
        it = iter(bounds)
        return (next(it) if self.has_lo else None), (next(it) if self.has_hi else None)

    def forward(self, x, *bounds):
        xp = backend.xp_of(x)
        lo, hi = self._lo_hi(bounds)
        self.save_for_backward(x, *bounds)
        y = x if lo is None else xp.maximum(x, lo)
        return y if hi is None else xp.minimum(y, hi)

    def backward(self, gy):
        x, *bounds = self.saved
        xp = backend.xp_of(gy)
        lo, hi = self._lo_hi(bounds)
        inside = xp.ones(gy.shape, bool)
        if lo is not None:
            inside = inside & (x >= lo)
        raised = x if lo is None else xp.maximum(x, lo)
        if hi is not None:
            inside = inside & (raised <= hi)
        grads = [sum_to(gy * inside, x.shape)]
        if lo is not None:
            below = x < lo
            if hi is not None:               # lo = hi: the result is hi's (PyTorch's rule)
                below = below & (lo < hi)
            grads.append(sum_to(gy * below, lo.shape))
        if hi is not None:
            grads.append(sum_to(gy * (raised > hi), hi.shape))
        return tuple(grads)


def clamp_tensors(input, lo, hi):
    """``clamp`` where a bound is a Tensor: the other bound (a number) becomes a constant of
    input's dtype and device; everything must broadcast to input's shape and share its
    dtype (as in PyTorch)."""
    bounds = []
    for name, b in (("min", lo), ("max", hi)):
        if b is None:
            continue
        if not isinstance(b, Tensor):                    # a number: a constant on input's
            b = Tensor(backend.xp_of(input.data).asarray(b, input.dtype))      # device
        if b.dtype != input.dtype:
            raise TypeError(f"clamp: '{name}' is {b.dtype}, the input {input.dtype}; they "
                            "must match")
        if b.device != input.device:
            raise RuntimeError(f"clamp: '{name}' is on {b.device}, the input on "
                               f"{input.device}")
        check_broadcast("clamp", input, b)
        bounds.append(b)
    return ClampBounds(lo is not None, hi is not None)(input, *bounds)
