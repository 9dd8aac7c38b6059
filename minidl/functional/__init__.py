"""minidl.functional: every differentiable op, as functions on Tensors (imported as ``F``).

One module per kind of op; each op is a ``Function`` subclass (forward and backward on raw
arrays, side by side, the gradient's math in its docstring) plus a lowercase wrapper that checks
its arguments and calls it.
"""
from .. import tensor as _tensor
from ._utils import sum_to
from .activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .activation import (elu, hardsigmoid, hardswish, hardtanh, mish, relu6, silu,
                         softplus)
from .elementwise import (abs, add, cast, clamp, clip, div, lerp, maximum, minimum, mul, neg, pow,
                          sub, to_device, where)
from .unary import cos, exp, expm1, log, log1p, reciprocal, rsqrt, sign, sin, sqrt, square
from .linalg import linear, matmul
from .loss import cross_entropy, nll_loss
from .loss_pointwise import (binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss,
                             kl_div, l1_loss, mse_loss, smooth_l1_loss)
from .reduction import argmax, argmin, max, mean, min, std, sum, var
from .reduction import (all, amax, amin, any, cumsum, logsumexp, norm, prod)
from .sorting import argsort, return_types, sort, topk
from .comparison import (allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, clone,
                         contiguous, eq, equal, ge, gt, isclose, isfinite, isinf, isnan, le,
                         logical_and, logical_not, logical_or, logical_xor, lt, ne)
from .shape import (broadcast_to, cat, chunk, concatenate, expand, flatten, flip, moveaxis,
                    movedim, pad, permute, repeat, reshape, roll, split, squeeze, stack, tile,
                    transpose, unbind, unsqueeze, view)
from .indexing import (argwhere, gather, getitem, masked_fill, narrow, nonzero, one_hot, tril,
                       triu)
from .conv import conv2d
from .conv_transpose import conv_transpose2d
from .upsample import interpolate
from .pooling import avg_pool2d, max_pool2d
from .adaptive_pooling import adaptive_avg_pool2d, adaptive_max_pool2d, global_avg_pool2d
from .normalization import batch_norm, batch_norm_relu
from .group_norm import group_norm, layer_norm
from .dropout import dropout, dropout2d
from .checkpoint import checkpoint
from .activation_more import (hardshrink, logsigmoid, prelu, softshrink, softsign,
                              tanhshrink)
from .fold import fold, pixel_shuffle, pixel_unshuffle, unfold
from .distance import cosine_similarity, normalize, pairwise_distance
from .embedding import embedding
from .attention import scaled_dot_product_attention
from .recurrent import gru_cell, lstm_cell, rnn_relu_cell, rnn_tanh_cell

_tensor._bind_functional(__import__(__name__, fromlist=["*"]))
