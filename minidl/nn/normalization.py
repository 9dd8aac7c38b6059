"""Batch normalization layers with PyTorch's parameters, buffers and update rules."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from .. import functional as F
from ..tensor import Tensor
from .module import Module, Parameter


class _BatchNorm(Module):
    """Shared body of BatchNorm1d / BatchNorm2d.

    Parameters weight (ones) and bias (zeros) when ``affine``; buffers running_mean (zeros),
    running_var (ones) and num_batches_tracked (int64) when ``track_running_stats``. Training
    uses batch statistics and updates the buffers (momentum None: cumulative average, with
    the count read on the host on the CPU and kept on the device on a GPU); eval uses the
    buffers (or batch statistics when they are not tracked).

    In a CUDA graph (``minidl.cuda_graph``), ``momentum`` and ``eps`` are recorded as the
    values they had when the step was captured: changing them afterwards has no effect on
    the replays (build a new ``GraphedStep``). ``momentum=None`` keeps counting on every
    replay, since its factor is computed on the device.
    """

    _name = "_BatchNorm"
    _dims = ()
    _relu = False           # BatchNormReLU2d: ReLU fused into the same op

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        op = self._name
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) \
                or num_features <= 0:
            raise ValueError(f"{op}: 'num_features' must be a positive int, got {num_features!r}")
        if not isinstance(eps, numbers.Real) or eps <= 0:
            raise ValueError(f"{op}: 'eps' must be a positive number, got {eps!r}")
        if momentum is not None and (not isinstance(momentum, numbers.Real)
                                     or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"{op}: 'momentum' must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        C = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, dtype=dtype))
            self.bias = Parameter(np.zeros(C, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(C, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(C, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x):
        op = self._name
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}-D" for d in self._dims)
            raise ValueError(f"{op}: expected a {want} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{op}: input has {x.shape[1]} channels, the layer expects "
                             f"{self.num_features} (num_features), input shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        fn = F.batch_norm_relu if self._relu else F.batch_norm
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:   # cumulative average: 1 / (batches so far)
                if backend.xp_of(self.num_batches_tracked.data) is not np:
                    return self._cumulative_on_device(fn, x)
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return fn(x, self.running_mean if track else None,
                  self.running_var if track else None, self.weight, self.bias, use_batch,
                  factor, self.eps)

    def _cumulative_on_device(self, fn, x):
        """Training with momentum=None on a GPU, without reading the batch count back to the
        host (a wait for the device per layer and step; refused in a CUDA graph): the batch
        statistics land in scratch vectors (momentum 1 on zeros), then the running ones move
        by the factor 1 / num_batches_tracked computed on the device, as the CPU computes it
        on the host. A captured graph thus keeps counting on every replay."""
        rm, rv = self.running_mean.data, self.running_var.data
        xp = backend.xp_of(rm)
        batch_mean, batch_var = Tensor(xp.zeros_like(rm)), Tensor(xp.zeros_like(rv))
        y = fn(x, batch_mean, batch_var, self.weight, self.bias, True, 1.0, self.eps)
        f = 1.0 / self.num_batches_tracked.data.astype(np.float64)     # 0-d, on the device
        for run, new in ((rm, batch_mean.data), (rv, batch_var.data)):
            run[...] = run * (1.0 - f).astype(run.dtype) + new * f.astype(run.dtype)
        return y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs."""
    _name = "BatchNorm1d"
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs."""
    _name = "BatchNorm2d"
    _dims = (4,)


class BatchNormReLU2d(BatchNorm2d):
    """``relu(BatchNorm2d(x))`` in one op (``F.batch_norm_relu``): the same parameters,
    buffers and state_dict keys as BatchNorm2d, one memory pass and one saved array fewer."""
    _name = "BatchNormReLU2d"
    _relu = True
