"""minidl: a deep-learning engine written from scratch on NumPy (CPU) and CuPy (GPU).

    import minidl
    import minidl.nn as nn
    import minidl.functional as F

The package is layered bottom-up: backend (numpy | cupy) -> tensor (Tensor, Function, autograd)
-> functional (ops) -> nn (modules) -> optim, data, gradcheck, serialization.
"""
from . import backend
from .backend import (Device, get_array_module, is_cuda_available, set_tf32, synchronize,
                      tf32_enabled)
from .backend import Device as device
from .random import default_generator, get_rng_state, initial_seed, manual_seed, set_rng_state
from .tensor import Tensor, bool_, float16, float32, float64, int8, int32, int64, uint8
from .autograd import (Function, enable_grad, inference_mode, is_grad_enabled, no_grad,
                       set_grad_enabled)
from . import functional
from .functional import (abs, argmax, argmin, cat, chunk, clamp, clip, exp, flatten, log,
                         matmul, maximum, mean, minimum, pad, permute, reshape, sigmoid, softmax,
                         split, sqrt, squeeze, stack, std, tanh, transpose, unsqueeze, var, where)
from .functional import max, min, sum, relu, log_softmax
from .functional import (cos, expm1, flip, gather, lerp, log1p, masked_fill, moveaxis, movedim,
                         narrow, reciprocal, roll, rsqrt, sign, sin, square, tile, tril, triu,
                         unbind)
from .functional import (all, allclose, amax, amin, any, argsort, clone, cumsum, eq, equal,
                         ge, gt, isclose, isfinite, isinf, isnan, le, logsumexp, lt, ne, norm,
                         prod, sort, topk)
from .functional import (add, argwhere, bitwise_and, bitwise_not, bitwise_or, bitwise_xor,
                         broadcast_to, div, logical_and, logical_not, logical_or, logical_xor,
                         mul, neg, nonzero, pixel_shuffle, pixel_unshuffle, pow, sub)
from .factories import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                        linspace, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                        randperm, tensor, zeros, zeros_like)
from .gradcheck import GradcheckError, gradcheck
from .serialization import load, save
from .kernels.threads import get_num_threads, set_num_threads
from .kernels.host_memory import host_memory_reuse, set_host_memory_reuse
from . import cuda, cuda_graph, data, nn, optim, profiler  # noqa: E402  (minidl.nn etc.)
from .summary import summary  # noqa: E402  (the function; the module stays in sys.modules)

__version__ = "0.1.0"
