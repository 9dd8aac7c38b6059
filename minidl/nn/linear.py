"""Fully connected layer."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._checks import check_int
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b, W of shape (out_features, in_features).

    Initialized as in PyTorch: W ~ kaiming_uniform(a=sqrt 5), i.e. U(-1/sqrt(in), 1/sqrt(in)),
    and b ~ U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        in_features = check_int("Linear", "in_features", in_features, 1)
        out_features = check_int("Linear", "out_features", out_features, 1)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            bound = 1.0 / math.sqrt(in_features)
            self.bias = Parameter(np.empty((out_features,), dtype=dtype))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
