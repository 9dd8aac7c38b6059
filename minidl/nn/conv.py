"""2-D convolution layers: Conv2d and ConvTranspose2d."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from .._checks import check_int
from . import init
from ..functional._utils import check_pair
from ..functional.conv_transpose import check_output_padding, conv_transpose_out_size
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
            check_int("Conv2d", name, v, 1)
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
        return _conv_repr(self)


def _conv_repr(m):
    """The arguments of a Conv2d or ConvTranspose2d as PyTorch prints them (defaults left out)."""
    s = (f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, "
         f"stride={m.stride}")
    for name, default in (("padding", (0, 0)), ("dilation", (1, 1)),
                          ("output_padding", (0, 0)), ("groups", 1)):
        value = getattr(m, name, default)
        if value != default:
            s += f", {name}={value}"
    if m.bias is None:
        s += ", bias=False"
    return s


class ConvTranspose2d(Module):
    """Transposed convolution over an (N, C_in, H, W) batch: ``F.conv_transpose2d`` with a
    learned weight (C_in, C_out / groups, KH, KW) and optional bias (C_out,).

    Initialized as in PyTorch, whose fan-in rule reads dimension 1 of the weight as the input
    channels: fan_in = C_out/groups*KH*KW, weight ~ kaiming_uniform(a=sqrt 5) =
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    ``forward(x, output_size=None)``: as in PyTorch, an explicit (H, W) output size (or
    (N, C, H, W)) picks the output padding that gives it, among the sizes the stride allows.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=np.float32):
        super().__init__()
        op = "ConvTranspose2d"
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            check_int(op, name, v, 1)
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if v % groups:
                raise ValueError(f"{op}: {name} ({v}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = check_pair(op, "kernel_size", kernel_size, 1)
        self.stride = check_pair(op, "stride", stride, 1)
        self.padding = check_pair(op, "padding", padding, 0)
        self.dilation = check_pair(op, "dilation", dilation, 1)
        self.output_padding = check_output_padding(op, output_padding, self.stride,
                                                   self.dilation)
        self.groups = int(groups)
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), nonlinearity="leaky_relu")
        if bias:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x, output_size=None):
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)

    def _output_padding(self, x, output_size):
        op = "ConvTranspose2d"
        size = tuple(output_size)
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2 or not all(isinstance(v, numbers.Integral) for v in size):
            raise ValueError(f"{op}: 'output_size' must be (H, W) or (N, C, H, W) ints, got "
                             f"{output_size!r}")
        if getattr(x, "ndim", None) != 4:
            raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape "
                             f"{getattr(x, 'shape', None)}")
        pad = []
        for a in range(2):
            smallest = conv_transpose_out_size(x.shape[2 + a], self.kernel_size[a],
                                               self.stride[a], self.padding[a], 0,
                                               self.dilation[a])
            largest = smallest + self.stride[a] - 1
            if not smallest <= size[a] <= largest:
                raise ValueError(f"{op}: requested output size {tuple(size)} is not reachable "
                                 f"from input {x.shape}: each side must lie in "
                                 f"{smallest}..{largest} for axis {a}")
            pad.append(int(size[a]) - smallest)
        return tuple(pad)

    def extra_repr(self):
        return _conv_repr(self)
