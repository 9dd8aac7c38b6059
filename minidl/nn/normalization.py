"""Batch normalization layers with PyTorch's parameters, buffers and update rules."""
from __future__ import annotations

import functools
import numbers

import numpy as np

from .. import backend
from .. import functional as F
from .._checks import check_int, check_number
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
    max_value = None        # ... clamped above too (relu6)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        op = self._name
        self.num_features = check_int(op, "num_features", num_features, 1)
        self.eps = check_number(op, "eps", eps, 0, open_min=True)
        if momentum is not None:
            momentum = check_number(op, "momentum", momentum, 0, 1, or_none=True)
        self.momentum = momentum
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
        fn = (functools.partial(F.batch_norm_relu, max_value=self.max_value) if self._relu
              else F.batch_norm)
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
    buffers and state_dict keys as BatchNorm2d, one memory pass and one saved array fewer.
    With ``max_value``, ``hardtanh(BatchNorm2d(x), 0, max_value)`` (relu6: 6)."""
    _name = "BatchNormReLU2d"
    _relu = True

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32, max_value=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        if max_value is not None:
            max_value = check_number(self._name, "max_value", max_value, 0, open_min=True)
        self.max_value = max_value

    def extra_repr(self):
        top = "" if self.max_value is None else f", max_value={self.max_value}"
        return super().extra_repr() + top


def _affine_params(module, shape, weight, bias, dtype):
    """Register weight (ones) and bias (zeros) of ``shape``, or None for the ones not wanted."""
    if weight:
        module.weight = Parameter(np.ones(shape, dtype=dtype))
    else:
        module.register_parameter("weight", None)
    if weight and bias:
        module.bias = Parameter(np.zeros(shape, dtype=dtype))
    else:
        module.register_parameter("bias", None)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` of the input
    (``F.layer_norm``): per sample mean and biased variance, then an elementwise affine map
    (weight ones, bias zeros, both of shape normalized_shape; no bias with ``bias=False``,
    neither with ``elementwise_affine=False``). The same in training and eval."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        super().__init__()
        op = "LayerNorm"
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) \
            else normalized_shape
        if isinstance(normalized_shape, bool) or not isinstance(shape, (tuple, list)) \
                or not shape or not all(isinstance(s, numbers.Integral)
                                        and not isinstance(s, bool) and s > 0 for s in shape):
            raise ValueError(f"{op}: 'normalized_shape' must be a positive int or a non-empty "
                             f"tuple of positive ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = check_number(op, "eps", eps, 0, open_min=True)
        self.elementwise_affine = bool(elementwise_affine)
        _affine_params(self, self.normalized_shape, self.elementwise_affine, bias, dtype)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalization (``F.group_norm``) of (N, C, *) inputs: the channels in
    ``num_groups`` groups, each sample's group normalized by its own statistics, then a per
    channel affine map (weight ones, bias zeros when ``affine``; no bias with ``bias=False``).
    The same in training and eval."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32, *,
                 bias=True):
        super().__init__()
        op = "GroupNorm"
        self.num_groups = check_int(op, "num_groups", num_groups, 1)
        self.num_channels = check_int(op, "num_channels", num_channels, 1)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{op}: 'num_channels' ({num_channels}) must be divisible by "
                             f"'num_groups' ({num_groups})")
        self.eps = check_number(op, "eps", eps, 0, open_min=True)
        self.affine = bool(affine)
        _affine_params(self, (self.num_channels,), self.affine, bias, dtype)

    def forward(self, x):
        if isinstance(x, Tensor) and x.ndim >= 2 and x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: input has {x.shape[1]} channels, the layer expects "
                             f"{self.num_channels} (num_channels), input shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class InstanceNorm2d(Module):
    """Instance normalization of (N, C, H, W) or (C, H, W) inputs: each sample's channel
    normalized by its own mean and biased variance over H x W (group norm with one channel per
    group), then, with ``affine``, a per channel affine map (weight ones, bias zeros).

    Running statistics (``track_running_stats=True``) are not implemented and refused;
    ``momentum`` is then unused, kept for PyTorch's signature and repr."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype=np.float32, *, bias=True):
        super().__init__()
        op = "InstanceNorm2d"
        self.num_features = check_int(op, "num_features", num_features, 1)
        self.eps = check_number(op, "eps", eps, 0, open_min=True)
        if momentum is not None:
            check_number(op, "momentum", momentum, 0, 1, or_none=True)
        if track_running_stats:
            raise NotImplementedError(
                f"{op}: track_running_stats=True is not supported (minidl's instance norm "
                "keeps no running statistics); use track_running_stats=False, which "
                "normalizes by each instance's own statistics in training and eval")
        self.momentum, self.affine, self.track_running_stats = momentum, bool(affine), False
        _affine_params(self, (self.num_features,), self.affine, bias, dtype)

    def forward(self, x):
        op = "InstanceNorm2d"
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
        if x.ndim not in (3, 4):
            raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
                             f"shape {x.shape}")
        if x.shape[-3] != self.num_features:
            raise ValueError(f"{op}: input has {x.shape[-3]} channels, the layer expects "
                             f"{self.num_features} (num_features), input shape {x.shape}")
        if x.shape[-1] * x.shape[-2] == 1:      # each instance's mean is its one value
            raise ValueError(f"{op}: expected more than 1 spatial element per channel (it "
                             f"normalizes each image's channel over H x W), got input shape "
                             f"{x.shape}")
        x4 = x if x.ndim == 4 else F.unsqueeze(x, 0)
        y = F.group_norm(x4, self.num_features, self.weight, self.bias, self.eps)
        return y if x.ndim == 4 else F.reshape(y, x.shape)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
