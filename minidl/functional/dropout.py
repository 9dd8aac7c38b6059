"""Dropout (inverted): zero entries (or whole channels) with probability p while training and
scale the survivors by 1 / (1 - p), so evaluation is the identity.

Masks draw from minidl's seeded generator of the input's device
(``minidl.random.default_generator``), so ``minidl.manual_seed`` makes them repeat.

Reference: Srivastava et al., Dropout: A Simple Way to Prevent Neural Networks from
Overfitting, 2014; Tompson et al., Efficient Object Localization Using Convolutional Networks
(spatial dropout), 2015.
"""
from __future__ import annotations

from .. import backend
from .._checks import check_bool, check_number
from ..random import default_generator
from ..autograd import Function
from ._utils import check_float


class Dropout(Function):
    """y = x * mask, mask = keep / (1 - p) with keep ~ Bernoulli(1 - p), drawn per entry
    (or per (n, c) channel, broadcast over the pixels, for dropout2d).

    Gradient: gx = gy * mask.
    """

    def __init__(self, p, mask_shape):
        self.p, self.mask_shape = p, mask_shape

    def forward(self, x):
        xp = backend.xp_of(x)
        u = default_generator(backend.device_of(x)).uniform(self.mask_shape, x.dtype)
        mask = xp.where(u >= self.p, x.dtype.type(1.0 / (1.0 - self.p)), x.dtype.type(0))
        self.save_for_backward(mask)
        return x * mask

    def backward(self, gy):
        return gy * self.saved[0]


def _check(op, input, p, training):
    check_float(op, "input", input)
    check_number(op, "p", p, 0, 1, open_max=True)
    check_bool(op, "training", training)


def dropout(input, p=0.5, training=True):
    """Zero each entry with probability ``p`` and scale the rest by 1/(1-p) when training;
    return ``input`` itself otherwise (or when p == 0)."""
    _check("dropout", input, p, training)
    if not training or p == 0:
        return input
    return Dropout(float(p), input.shape)(input)


def dropout2d(input, p=0.5, training=True):
    """Channel dropout for (N, C, H, W): zero whole feature maps with probability ``p`` and
    scale the rest by 1/(1-p) when training; identity otherwise."""
    _check("dropout2d", input, p, training)
    if input.ndim != 4:
        raise ValueError(f"dropout2d: 'input' must be 4-D (N, C, H, W), got shape "
                         f"{input.shape}")
    if not training or p == 0:
        return input
    return Dropout(float(p), input.shape[:2] + (1, 1))(input)
