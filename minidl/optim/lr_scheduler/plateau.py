"""ReduceLROnPlateau: lower the lr when a metric stops improving."""
from __future__ import annotations

import math
import numbers

from ..._checks import check_int, check_number
from ...tensor import Tensor
from .base import LRScheduler, _check_optimizer, _per_group


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric (e.g. the validation loss) has stopped
    improving for more than ``patience`` steps. Call ``step(metrics)`` once per evaluation.

    With ``best`` the best metric so far, a new value ``a`` is an improvement when::

        mode='min', threshold_mode='rel':  a < best * (1 - threshold)
        mode='min', threshold_mode='abs':  a < best - threshold
        mode='max', threshold_mode='rel':  a > best * (1 + threshold)
        mode='max', threshold_mode='abs':  a > best + threshold

    Each step without improvement adds one bad step (a NaN metric counts as one, as in
    PyTorch); an improvement resets the count. When the count exceeds ``patience``, every
    group's lr becomes ``max(lr * factor, min_lr)`` (unchanged when that moves it by at most
    ``eps``), the count restarts, and the next ``cooldown`` steps count no bad steps.

    Args:
        optimizer: the optimizer whose groups' lrs are reduced.
        mode: ``'min'`` (the metric should decrease) or ``'max'``. Default: ``'min'``.
        factor: the reduction factor, in [0, 1). Default: 0.1.
        patience: bad steps tolerated before reducing (int >= 0). Default: 10.
        threshold: the least change that counts as an improvement (>= 0). Default: 1e-4.
        threshold_mode: ``'rel'`` or ``'abs'`` (see above). Default: ``'rel'``.
        cooldown: steps to wait after a reduction before counting again (int >= 0).
            Default: 0.
        min_lr: lower bound on the lr (>= 0), a number or one per param group. Default: 0.
        eps: smallest change of the lr that is applied (>= 0). Default: 1e-8.
    """

    _group_lists = ()
    _MODES, _THRESHOLD_MODES = ("min", "max"), ("rel", "abs")

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        name = "ReduceLROnPlateau"
        _check_optimizer(name, optimizer)
        self._check_modes(name, mode, threshold_mode)
        self.factor = check_number(name, "factor", factor, 0, 1, open_max=True)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group(name, "min_lr", min_lr, n, low=0.0)
        else:
            self.default_min_lr = check_number(name, "min_lr", min_lr, 0)
            self.min_lrs = [self.default_min_lr] * n
        self.patience = check_int(name, "patience", patience, 0)
        self.threshold = check_number(name, "threshold", threshold, 0)
        if mode == "min" and threshold_mode == "rel" and self.threshold >= 1.0:
            raise ValueError(f"{name}: threshold must be < 1 with mode='min' and "
                             "threshold_mode='rel' (no value could count as an improvement), "
                             f"got {self.threshold!r}")
        self.cooldown = check_int(name, "cooldown", cooldown, 0)
        self.eps = check_number(name, "eps", eps, 0)
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @classmethod
    def _check_modes(cls, owner, mode, threshold_mode):
        if mode not in cls._MODES:
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in cls._THRESHOLD_MODES:
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel"
                    else best + self.threshold)

    def step(self, metrics):
        """Record one value of the metric (a number, or a one-element Tensor or array, e.g.
        the validation loss) and reduce the lrs if it has plateaued."""
        current = _metric_value(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"ReduceLROnPlateau: the optimizer has {len(groups)} param groups but "
                    f"min_lr was given for {len(self.min_lrs)} (was a group added?); set "
                    "scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, low in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, low)
            if old - new > self.eps:
                group["lr"] = new

    def get_lr(self):
        raise NotImplementedError("ReduceLROnPlateau has no schedule of its own: its lrs "
                                  "depend on the metrics given to step(metrics)")

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        name = "ReduceLROnPlateau.load_state_dict"
        self._check_modes(name, self.mode, self.threshold_mode)
        n = len(self.optimizer.param_groups)
        if self.default_min_lr is None and len(self.min_lrs) != n:
            raise ValueError(f"{name}: the state dict has {len(self.min_lrs)} min_lrs, the "
                             f"optimizer has {n} param group(s)")


def _metric_value(metrics):
    """``ReduceLROnPlateau.step``'s metric as a Python float."""
    owner = "ReduceLROnPlateau.step"
    value = metrics
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "shape") and hasattr(value, "item"):      # NumPy/CuPy array or scalar
        if getattr(value, "size", 1) != 1:
            raise ValueError(f"{owner}: metrics must be a number or a one-element Tensor "
                             f"(e.g. the mean validation loss), got a "
                             f"{type(metrics).__name__} of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: metrics must be a real number or a one-element Tensor, "
                        f"got {type(metrics).__name__} {metrics!r}")
    return float(value)
