"""Activation modules: thin wrappers over minidl.functional."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import check_int, check_number
from ..tensor import Tensor
from .module import Module, Parameter


class ReLU(Module):
    """max(x, 0). (``inplace`` is accepted for PyTorch compatibility and ignored.)"""

    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """Softmax along ``dim``; without one, PyTorch's legacy choice with a warning (see
    ``F.softmax``)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class Softmax2d(Module):
    """Softmax over the channels (dim -3) of a (N, C, H, W) or (C, H, W) input."""

    def forward(self, x):
        if isinstance(x, Tensor) and x.ndim not in (3, 4):    # (F.softmax checks the rest)
            raise ValueError(f"Softmax2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got shape {x.shape}")
        return F.softmax(x, -3)


class _Pointwise(Module):
    """An activation with no hyperparameter but PyTorch's ``inplace`` (accepted for
    compatibility and ignored, as in ReLU: the result is a new tensor)."""

    def __init__(self, inplace=False):
        super().__init__()


class SiLU(_Pointwise):
    """x * sigmoid(x)."""

    def forward(self, x):
        return F.silu(x)


class Mish(_Pointwise):
    """x * tanh(softplus(x))."""

    def forward(self, x):
        return F.mish(x)


class ReLU6(_Pointwise):
    """min(max(x, 0), 6)."""

    def forward(self, x):
        return F.relu6(x)


class Hardsigmoid(_Pointwise):
    """0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between."""

    def forward(self, x):
        return F.hardsigmoid(x)


class Hardswish(_Pointwise):
    """x * hardsigmoid(x)."""

    def forward(self, x):
        return F.hardswish(x)


class Hardtanh(Module):
    """x clipped to [min_val, max_val]."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val = check_number("Hardtanh", "min_val", min_val)
        self.max_val = check_number("Hardtanh", "max_val", max_val)
        if not self.max_val > self.min_val:
            raise ValueError(f"Hardtanh: 'max_val' must be greater than 'min_val', got "
                             f"min_val={min_val}, max_val={max_val}")

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = check_number("ELU", "alpha", alpha)

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = check_number("Softplus", "beta", beta)
        self.threshold = check_number("Softplus", "threshold", threshold)
        if self.beta == 0.0:
            raise ValueError("Softplus: 'beta' must be nonzero (it divides the result), got 0")

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class PReLU(Module):
    """x if x > 0 else a * x with a learned slope ``a``: one shared (``num_parameters=1``) or
    one per channel (dim 1 of the input), initialized to ``init``."""

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = check_int("PReLU", "num_parameters", num_parameters, 1)
        self.weight = Parameter(np.full((self.num_parameters,),
                                        check_number("PReLU", "init", init), dtype=dtype))

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class LogSigmoid(Module):
    """log(sigmoid(x)), computed stably."""

    def forward(self, x):
        return F.logsigmoid(x)


class Softsign(Module):
    """x / (1 + |x|)."""

    def forward(self, x):
        return F.softsign(x)


class Tanhshrink(Module):
    """x - tanh(x)."""

    def forward(self, x):
        return F.tanhshrink(x)


class Softshrink(Module):
    """x - lambd above lambd, x + lambd below -lambd, 0 between (lambd >= 0)."""

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = check_number("Softshrink", "lambd", lambd, 0)

    def forward(self, x):
        return F.softshrink(x, self.lambd)

    def extra_repr(self):
        return f"{self.lambd}"


class Hardshrink(Module):
    """x where |x| > lambd, else 0."""

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = check_number("Hardshrink", "lambd", lambd)

    def forward(self, x):
        return F.hardshrink(x, self.lambd)

    def extra_repr(self):
        return f"{self.lambd}"
