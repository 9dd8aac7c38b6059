"""2-D convolution layer."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from . import init
from ..functional._utils import check_pair
from .module import Module, Parameter




class Conv2d(Module):
    """Convolution over an (N, C_in, H, W) batch: ``F.conv2d`` with a learned weight
    (C_out, C_in / groups, KH, KW) and optional bias (C_out,).

    Initialized as in PyTorch: weight ~ kaiming_uniform(a=sqrt 5) = U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in/groups*KH*KW.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"Conv2d: '{name}' must be a positive int, got {v!r}")
        if in_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups:
            raise ValueError(f"Conv2d: out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = check_pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = check_pair("Conv2d", "stride", stride, 1)
        self.padding = check_pair("Conv2d", "padding", padding, 0)
        self.dilation = check_pair("Conv2d", "dilation", dilation, 1)
        self.groups = int(groups)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        # explicit nonlinearity: PyTorch's default for kaiming_uniform_ is leaky_relu
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), nonlinearity="leaky_relu")
        if bias:
            fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
