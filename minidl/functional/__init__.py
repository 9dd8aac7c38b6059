"""minidl.functional: every differentiable op, as functions on Tensors (imported as ``F``).

One module per kind of op; each op is a ``Function`` subclass (forward and backward on raw
arrays, side by side, the gradient's math in its docstring) plus a lowercase wrapper that checks
its arguments and calls it.
"""
from .. import tensor as _tensor
from ._utils import sum_to
from .activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .elementwise import (abs, add, cast, clamp, clip, div, exp, log, maximum, minimum, mul, neg,
                          pow, sqrt, sub, to_device, where)
from .linalg import linear, matmul
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .reduction import argmax, argmin, max, mean, min, std, sum, var
from .shape import (broadcast_to, cat, chunk, concatenate, expand, flatten, getitem, pad, permute,
                    reshape, split, squeeze, stack, transpose, unsqueeze, view)
from .conv import conv2d
from .pooling import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d
from .normalization import batch_norm, batch_norm_relu
from .dropout import dropout, dropout2d
from .checkpoint import checkpoint

_tensor._bind_functional(__import__(__name__, fromlist=["*"]))
