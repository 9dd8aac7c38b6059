"""Chainable schedulers with closed forms: StepLR, MultiStepLR, LinearLR, LambdaLR,
MultiplicativeLR, ExponentialLR, ConstantLR, PolynomialLR."""
from __future__ import annotations

import bisect

from ..._checks import check_int, check_number
from .base import LRScheduler, _check_optimizer


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` steps.

    Closed form: ``lr(t) = base_lr * gamma ** (t // step_size)``.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        step_size: period of the decay in steps (int >= 1).
        gamma: multiplicative factor (>= 0). Default: 0.1.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = check_int("StepLR", "step_size", step_size, 1)
        self.gamma = check_number("StepLR", "gamma", gamma, 0)
        super().__init__(optimizer)

    def get_lr(self):
        t = self.last_epoch
        factor = self.gamma if t > 0 and t % self.step_size == 0 else 1.0
        return [g["lr"] * factor for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone step.

    Closed form: ``lr(t) = base_lr * gamma ** (number of milestones <= t)`` (a milestone listed
    twice counts twice).

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        milestones: steps at which to decay (ints >= 1, any order).
        gamma: multiplicative factor (>= 0). Default: 0.1.
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"MultiStepLR: milestones must be a list of ints, got "
                            f"{type(milestones).__name__} {milestones!r}")
        self.milestones = sorted(check_int("MultiStepLR", f"milestones[{i}]", m, 1)
                                 for i, m in enumerate(milestones))
        self.gamma = check_number("MultiStepLR", "gamma", gamma, 0)
        super().__init__(optimizer)

    def get_lr(self):
        hits = self.milestones.count(self.last_epoch)
        return [g["lr"] * self.gamma ** hits for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        k = bisect.bisect_right(self.milestones, self.last_epoch)
        return [b * self.gamma ** k for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr by a factor going linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then keep it (a linear warm-up when ``start_factor < end_factor``).

    Closed form::

        lr(t) = base_lr * (start_factor + (end_factor - start_factor) * min(t, total_iters)
                           / total_iters)

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        start_factor: factor at step 0, in (0, 1]. Default: 1/3.
        end_factor: factor from step ``total_iters`` on, in [0, 1]. Default: 1.0.
        total_iters: number of steps of the ramp (int >= 1). Default: 5.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self.start_factor = check_number("LinearLR", "start_factor", start_factor, 0, 1,
                                         open_min=True)
        self.end_factor = check_number("LinearLR", "end_factor", end_factor, 0, 1)
        self.total_iters = check_int("LinearLR", "total_iters", total_iters, 1)
        super().__init__(optimizer)

    def get_lr(self):
        t, s, e, n = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        groups = self.optimizer.param_groups
        if t == 0:
            return [g["lr"] * s for g in groups]
        if t > n:
            return [g["lr"] for g in groups]
        # factor(t) / factor(t - 1)
        ratio = 1.0 + (e - s) / (n * s + (t - 1) * (e - s))
        return [g["lr"] * ratio for g in groups]

    def _get_closed_form_lr(self):
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        factor = s + (e - s) * min(self.last_epoch, n) / n
        return [b * factor for b in self.base_lrs]


def _lr_lambdas(owner, lr_lambda, n):
    """One callable per param group, from a callable or a list/tuple of ``n`` of them."""
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != n:
            raise ValueError(f"{owner}: lr_lambda has {len(lr_lambda)} functions, the "
                             f"optimizer has {n} param group(s)")
        fns = list(lr_lambda)
    else:
        fns = [lr_lambda] * n
    for i, fn in enumerate(fns):
        if not callable(fn):
            raise TypeError(f"{owner}: lr_lambda must be a function of the step count (or a "
                            f"list of one per param group), got {type(fn).__name__} "
                            f"{fn!r}" + (f" at index {i}" if isinstance(lr_lambda,
                                                                       (list, tuple)) else ""))
    return fns


class _LambdaScheduler(LRScheduler):
    """LambdaLR and MultiplicativeLR: the user's functions are not saved by ``state_dict()``
    (it holds ``None`` for each, PyTorch's layout for plain functions); rebuild the scheduler
    with the same functions and load the state into it."""

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda):
        _check_optimizer(type(self).__name__, optimizer)
        self.lr_lambdas = _lr_lambdas(type(self).__name__, lr_lambda,
                                      len(optimizer.param_groups))
        super().__init__(optimizer)

    def _factors(self):
        """``lr_lambda[i](last_epoch)`` for each group, checked to be a number >= 0."""
        t, owner = self.last_epoch, type(self).__name__
        return [check_number(owner, f"lr_lambda[{i}]", fn(t), 0, where=f" (its factor at step {t})")
                for i, fn in enumerate(self.lr_lambdas)]

    def state_dict(self):
        out = super().state_dict()
        out["lr_lambdas"] = [None] * len(self.lr_lambdas)
        return out

    def load_state_dict(self, state_dict):
        if isinstance(state_dict, dict) and "lr_lambdas" in state_dict:
            saved = state_dict["lr_lambdas"]
            if not isinstance(saved, (list, tuple)) or any(s is not None for s in saved):
                raise ValueError(f"{type(self).__name__}.load_state_dict: 'lr_lambdas' must "
                                 "be a list of None (the functions are not saved; build the "
                                 f"scheduler with them), got {saved!r}")
            state_dict = {k: v for k, v in state_dict.items() if k != "lr_lambdas"}
        super().load_state_dict(state_dict)


class LambdaLR(_LambdaScheduler):
    """Set the lr to the initial lr times a function of the step count.

    ``lr(t) = base_lr * lr_lambda(t)``: not chainable (it overrides other schedulers' changes).

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        lr_lambda: a function ``t -> factor`` (a number >= 0), or a list of one per param
            group. Not saved by ``state_dict()``.
    """

    def __init__(self, optimizer, lr_lambda):
        super().__init__(optimizer, lr_lambda)

    def get_lr(self):
        return [b * f for b, f in zip(self.base_lrs, self._factors())]


class MultiplicativeLR(_LambdaScheduler):
    """Multiply the current lr by a function of the step count at every step but the first.

    ``lr(0) = base_lr``, ``lr(t) = lr(t - 1) * lr_lambda(t)`` for ``t >= 1``: chainable.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        lr_lambda: a function ``t -> factor`` (a number >= 0), or a list of one per param
            group. Not saved by ``state_dict()``.
    """

    def __init__(self, optimizer, lr_lambda):
        super().__init__(optimizer, lr_lambda)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * f for g, f in zip(groups, self._factors())]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every step.

    Closed form: ``lr(t) = base_lr * gamma ** t``.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        gamma: multiplicative factor (>= 0).
    """

    def __init__(self, optimizer, gamma):
        self.gamma = check_number("ExponentialLR", "gamma", gamma, 0)
        super().__init__(optimizer)

    def get_lr(self):
        factor = 1.0 if self.last_epoch == 0 else self.gamma
        return [g["lr"] * factor for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [b * self.gamma ** self.last_epoch for b in self.base_lrs]


class ConstantLR(LRScheduler):
    """Scale the lr by ``factor`` for the first ``total_iters`` steps, then restore it.

    Closed form: ``lr(t) = base_lr * (factor if t < total_iters else 1)``.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        factor: the scale, in (0, 1]. Default: 1/3. (PyTorch accepts 0 and then fails with
            a division by zero at step ``total_iters``; minidl refuses it up front.)
        total_iters: number of scaled steps (int >= 1). Default: 5.
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5):
        self.factor = check_number("ConstantLR", "factor", factor, 0, 1, open_min=True)
        self.total_iters = check_int("ConstantLR", "total_iters", total_iters, 1)
        super().__init__(optimizer)

    def get_lr(self):
        t, groups = self.last_epoch, self.optimizer.param_groups
        if t == 0:
            return [g["lr"] * self.factor for g in groups]
        if t == self.total_iters:
            return [g["lr"] * (1.0 / self.factor) for g in groups]
        return [g["lr"] for g in groups]

    def _get_closed_form_lr(self):
        f = self.factor if self.last_epoch < self.total_iters else 1.0
        return [b * f for b in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decay the lr to 0 along a polynomial over ``total_iters`` steps, then keep it at 0.

    Closed form: ``lr(t) = base_lr * (1 - min(t, total_iters) / total_iters) ** power``.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        total_iters: number of steps of the decay (int >= 1). Default: 5.
        power: the polynomial's power (>= 0). Default: 1.0 (linear).
    """

    def __init__(self, optimizer, total_iters=5, power=1.0):
        self.total_iters = check_int("PolynomialLR", "total_iters", total_iters, 1)
        self.power = check_number("PolynomialLR", "power", power, 0)
        super().__init__(optimizer)

    def get_lr(self):
        t, n, groups = self.last_epoch, self.total_iters, self.optimizer.param_groups
        if t == 0 or t > n:
            return [g["lr"] for g in groups]
        # factor(t) / factor(t - 1)
        ratio = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [g["lr"] * ratio for g in groups]

    def _get_closed_form_lr(self):
        n = self.total_iters
        return [b * (1.0 - min(n, self.last_epoch) / n) ** self.power for b in self.base_lrs]
