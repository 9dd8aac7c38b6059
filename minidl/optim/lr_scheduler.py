"""Learning-rate schedulers with PyTorch's names, formulas and stepping conventions.

A scheduler is built on an optimizer, immediately sets each group's ``lr`` for step 0, and
moves one step per ``step()`` call (after ``optimizer.step()``). ``base_lrs`` are the groups'
``'initial_lr'`` (recorded in the groups the first time a scheduler is attached).

Like PyTorch's, StepLR, MultiStepLR, LinearLR, CosineAnnealingLR, MultiplicativeLR,
ExponentialLR, ConstantLR and PolynomialLR are *chainable*: each step changes the group's
current ``lr`` by the schedule's ratio between consecutive steps, so two schedulers stepped
together compose (multiply; ChainedScheduler steps them with one call) and a manual change to
``group['lr']`` carries on. Run uninterrupted, each follows the closed form given in its
docstring. LambdaLR, CosineAnnealingWarmRestarts and OneCycleLR are not chainable: they set the
lr from ``base_lrs`` directly. SequentialLR runs schedulers one after another (e.g. a linear
warm-up, then cosine annealing). ReduceLROnPlateau is stepped with a metric instead
(``step(val_loss)``) and lowers the lr when the metric stops improving.

``state_dict()`` holds only Python numbers, strings and lists (no optimizer); restore the
optimizer's own state dict alongside it, since the current lrs live in its param groups.
"""
from __future__ import annotations

import bisect
import copy
import math
import numbers

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_bool, check_int, check_number


def _check_optimizer(owner, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{owner}: optimizer must be a minidl.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")


def _to_python(value):
    """NumPy scalars/arrays (e.g. from a checkpoint) to Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_python(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    return value


class LRScheduler:
    """Base class: subclasses set their hyperparameters, call ``super().__init__(optimizer)``
    and define ``get_lr()`` (the lrs at ``self.last_epoch``, from the groups' current lrs if
    chainable) and optionally ``_get_closed_form_lr()`` (the same from ``base_lrs`` alone)."""

    def __init__(self, optimizer):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]
        self.step()

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr")

    def _get_closed_form_lr(self):
        return self.get_lr()

    def step(self):
        """Advance one step and set each group's lr. Call it after ``optimizer.step()``."""
        self.last_epoch += 1
        try:
            lrs = self.get_lr()
        except BaseException:
            self.last_epoch -= 1
            raise
        self._set_lrs(lrs)

    def _set_lrs(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _restart(self):
        """Jump to step 0 of this schedule (SequentialLR does this at a milestone)."""
        self.last_epoch = 0
        self._set_lrs(self._get_closed_form_lr())

    def get_last_lr(self):
        """The lrs set by the last ``step()`` (or by construction), one per param group."""
        return list(self._last_lr)

    _not_saved = ("optimizer",)
    #: saved lists with one entry per param group (checked by ``load_state_dict``)
    _group_lists = ("base_lrs",)

    def state_dict(self):
        """Everything but the optimizer, as Python numbers, strings and lists."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items()
                if k not in self._not_saved}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` of the same scheduler class over as many param groups."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}: expected a dict from state_dict(), got "
                            f"{type(state_dict).__name__}")
        own = {k for k in self.__dict__ if k not in self._not_saved}
        missing = sorted(own - set(state_dict))
        unexpected = sorted(set(state_dict) - own)
        if missing or unexpected:
            raise ValueError(f"{name}: the state dict does not match this scheduler (missing "
                             f"{missing}, unexpected {unexpected}); was it saved from another "
                             "kind of scheduler?")
        n = len(self.optimizer.param_groups)
        for key in self._group_lists:
            got = state_dict[key]
            if not isinstance(got, (list, tuple, np.ndarray)) or len(got) != n:
                raise ValueError(f"{name}: the state dict has "
                                 f"{len(got) if hasattr(got, '__len__') else got!r} {key}, "
                                 f"the optimizer has {n} param group(s)")
        for key, value in state_dict.items():
            setattr(self, key, _to_python(copy.deepcopy(value)))


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` steps.

    Closed form: ``lr(t) = base_lr * gamma ** (t // step_size)``.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        step_size: period of the decay in steps (int >= 1).
        gamma: multiplicative factor (>= 0). Default: 0.1.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = check_int("StepLR", "step_size", step_size, low=1)
        self.gamma = check_number("StepLR", "gamma", gamma, low=0.0)
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
        self.milestones = sorted(check_int("MultiStepLR", f"milestones[{i}]", m, low=1)
                                 for i, m in enumerate(milestones))
        self.gamma = check_number("MultiStepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)

    def get_lr(self):
        hits = self.milestones.count(self.last_epoch)
        return [g["lr"] * self.gamma ** hits for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        k = bisect.bisect_right(self.milestones, self.last_epoch)
        return [b * self.gamma ** k for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from ``base_lr`` to ``eta_min`` along a half cosine over ``T_max`` steps.

    Closed form (SGDR without restarts; past ``T_max`` the cosine continues, rising again)::

        lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        T_max: number of steps of the half period (int >= 1).
        eta_min: the lowest lr (>= 0). Default: 0.

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", 2017.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = check_int("CosineAnnealingLR", "T_max", T_max, low=1)
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer)

    def get_lr(self):
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if t == 0:
            return [g["lr"] for g in groups]
        if (t - 1 - T) % (2 * T) == 0:
            # the previous step sat at the bottom (ratio 0/0): climb by the first increment
            rise = (1.0 - math.cos(math.pi / T)) / 2.0
            return [g["lr"] + (b - lo) * rise for g, b in zip(groups, self.base_lrs)]
        ratio = (1.0 + math.cos(math.pi * t / T)) / (1.0 + math.cos(math.pi * (t - 1) / T))
        return [lo + (g["lr"] - lo) * ratio for g in groups]

    def _get_closed_form_lr(self):
        c = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


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
        self.start_factor = check_number("LinearLR", "start_factor", start_factor, low=0.0,
                                         high=1.0, low_open=True)
        self.end_factor = check_number("LinearLR", "end_factor", end_factor, low=0.0, high=1.0)
        self.total_iters = check_int("LinearLR", "total_iters", total_iters, low=1)
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
        return [check_number(owner, f"the factor returned by lr_lambda[{i}]", fn(t),
                             f" at step {t}", low=0.0) for i, fn in enumerate(self.lr_lambdas)]

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
        self.gamma = check_number("ExponentialLR", "gamma", gamma, low=0.0)
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
        self.factor = check_number("ConstantLR", "factor", factor, low=0.0, high=1.0,
                                   low_open=True)
        self.total_iters = check_int("ConstantLR", "total_iters", total_iters, low=1)
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
        self.total_iters = check_int("PolynomialLR", "total_iters", total_iters, low=1)
        self.power = check_number("PolynomialLR", "power", power, low=0.0)
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


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR): anneal from ``base_lr`` to ``eta_min`` over
    ``T_0`` steps, restart at ``base_lr``, and make each period ``T_mult`` times longer.

    With ``T_cur`` the steps since the last restart and ``T_i`` the current period::

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    ``step()`` advances one step; ``step(epoch)`` jumps to ``epoch``, which may be fractional
    (e.g. ``step(epoch + i / iters_per_epoch)`` to anneal within epochs): the restarts before it
    are at ``T_0``, ``T_0 + T_0 * T_mult``, ... Not chainable.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        T_0: number of steps of the first period (int >= 1).
        T_mult: growth factor of the period after each restart (int >= 1). Default: 1.
        eta_min: the lowest lr (>= 0). Default: 0.

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", 2017.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0):
        name = "CosineAnnealingWarmRestarts"
        self.T_0 = check_int(name, "T_0", T_0, low=1)
        self.T_mult = check_int(name, "T_mult", T_mult, low=1)
        self.eta_min = check_number(name, "eta_min", eta_min, low=0.0)
        self.T_i = self.T_0
        self.T_cur = -1
        super().__init__(optimizer)

    def get_lr(self):
        c = (1.0 + math.cos(math.pi * self.T_cur / self.T_i)) / 2.0
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]

    def step(self, epoch=None):
        """Advance one step, or (``epoch`` given, a number >= 0) jump to step ``epoch``."""
        if epoch is None and self.last_epoch >= 0:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur -= self.T_i
                self.T_i *= self.T_mult
        else:
            if epoch is None:
                epoch = 0
            elif isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
                epoch = check_number("CosineAnnealingWarmRestarts.step", "epoch", epoch,
                                     low=0.0)
                if math.isinf(epoch):
                    raise ValueError("CosineAnnealingWarmRestarts.step: epoch must be "
                                     f"finite, got {epoch!r}")
            else:
                epoch = check_int("CosineAnnealingWarmRestarts.step", "epoch", epoch, low=0)
            # walk the periods (exact, unlike a logarithm)
            T_cur, T_i = epoch, self.T_0
            if self.T_mult == 1:
                T_cur = epoch % T_i
            while T_cur >= T_i:
                T_cur -= T_i
                T_i *= self.T_mult
            self.T_cur, self.T_i = T_cur, T_i
        self.last_epoch = math.floor(epoch)
        self._set_lrs(self.get_lr())

    def _restart(self):
        self.step(0)


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm the lr up from ``max_lr / div_factor`` to ``max_lr``, then anneal
    it to ``max_lr / div_factor / final_div_factor``; momentum (or Adam's beta1) moves the
    opposite way between ``max_momentum`` and ``base_momentum``. Step it after every batch.

    With ``initial = max_lr / div_factor``, ``min_lr = initial / final_div_factor`` and
    ``p = pct_start * total_steps``, the phases are, as in PyTorch (fastai's two phases by
    default, the paper's three with ``three_phase=True``)::

        two phases:    steps 0 .. p-1:        initial -> max_lr     momentum max -> base
                       steps p-1 .. T-1:      max_lr  -> min_lr     momentum base -> max
        three phases:  steps 0 .. p-1:        initial -> max_lr     momentum max -> base
                       steps p-1 .. 2p-2:     max_lr  -> initial    momentum base -> max
                       steps 2p-2 .. T-1:     initial -> min_lr     momentum max
        within a phase from step a to b, x = (t - a) / (b - a) and
        cos:     lr = end + (start - end) * (1 + cos(pi * x)) / 2
        linear:  lr = start + (end - start) * x

    So the lr starts at ``initial``, peaks at step ``p - 1`` and reaches ``min_lr`` at step
    ``T - 1``. As in PyTorch, the step count may reach ``T`` itself (the scheduler step that
    follows the last of T optimizer steps; the lr it sets lies past the schedule and is never
    used); stepping beyond that raises ValueError. Not chainable.

    Args:
        optimizer: the optimizer whose groups' lrs (and momenta) are set.
        max_lr: peak lr, a number or one per param group.
        total_steps: number of steps in the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs, steps_per_epoch: used when ``total_steps`` is None (``T = epochs * steps``).
        pct_start: fraction of the cycle spent warming up, in [0, 1]. Default: 0.3.
        anneal_strategy: ``'cos'`` or ``'linear'``. Default: ``'cos'``.
        cycle_momentum: also cycle ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam, AdamW).
            Default: True, as PyTorch (note: this overrides the optimizer's momentum).
        base_momentum, max_momentum: momentum bounds, numbers or one per group.
            Defaults: 0.85 and 0.95.
        div_factor: ``initial = max_lr / div_factor`` (> 0). Default: 25.
        final_div_factor: ``min_lr = initial / final_div_factor`` (> 0). Default: 1e4.
        three_phase: use the paper's three phases. Default: False.

    Reference: Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using
    Large Learning Rates", 2018.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False):
        name = "OneCycleLR"
        _check_optimizer(name, optimizer)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{name}: give total_steps, or both epochs and "
                                 f"steps_per_epoch; got total_steps=None, epochs={epochs!r}, "
                                 f"steps_per_epoch={steps_per_epoch!r}")
            total_steps = (check_int(name, "epochs", epochs, low=1)
                           * check_int(name, "steps_per_epoch", steps_per_epoch, low=1))
        self.total_steps = check_int(name, "total_steps", total_steps, low=1)
        pct_start = check_number(name, "pct_start", pct_start, low=0.0, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = check_bool(name, "cycle_momentum", cycle_momentum)
        self.three_phase = check_bool(name, "three_phase", three_phase)
        div_factor = check_number(name, "div_factor", div_factor, low=0.0, low_open=True)
        final_div = check_number(name, "final_div_factor", final_div_factor, low=0.0,
                                 low_open=True)
        groups = optimizer.param_groups
        max_lrs = _per_group(name, "max_lr", max_lr, len(groups), low=0.0)
        self.use_beta1 = "betas" in optimizer.defaults
        if self.cycle_momentum:
            if not self.use_beta1 and "momentum" not in optimizer.defaults:
                raise ValueError(f"{name}: cycle_momentum=True but {type(optimizer).__name__} "
                                 "has neither 'momentum' nor 'betas'; pass "
                                 "cycle_momentum=False")
            highs = _per_group(name, "max_momentum", max_momentum, len(groups), 0.0, 1.0)
            lows = _per_group(name, "base_momentum", base_momentum, len(groups), 0.0, 1.0)
            for group, high, low in zip(groups, highs, lows):
                group["max_momentum"], group["base_momentum"] = high, low
                self._set_momentum(group, high)
        for group, peak in zip(groups, max_lrs):
            group["initial_lr"] = peak / div_factor
            group["max_lr"] = peak
            group["min_lr"] = group["initial_lr"] / final_div
        p = float(pct_start * self.total_steps)
        last = float(self.total_steps - 1)
        # (end step, start key, end key, start momentum key, end momentum key)
        if self.three_phase:
            self._phases = [[p - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"],
                            [2 * p - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"],
                            [last, "initial_lr", "min_lr", "max_momentum", "max_momentum"]]
        else:
            self._phases = [[p - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"],
                            [last, "max_lr", "min_lr", "base_momentum", "max_momentum"]]
        super().__init__(optimizer)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value,) + tuple(group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start, end, x):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * x) + 1.0)
        return (end - start) * x + start

    def get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {t} times, but total_steps is "
                             f"{self.total_steps}; build the scheduler with total_steps equal "
                             "to the number of optimizer steps (epochs * steps_per_epoch)")
        lrs, momenta = [], []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
                if t <= end or i == len(self._phases) - 1:
                    x = (t - start) / (end - start) if end != start else 1.0
                    lrs.append(self._anneal(group[lr0], group[lr1], x))
                    if self.cycle_momentum:
                        momenta.append(self._anneal(group[m0], group[m1], x))
                    break
                start = end
        for group, m in zip(self.optimizer.param_groups, momenta):
            self._set_momentum(group, m)
        return lrs


def _per_group(owner, name, value, n, low=None, high=None):
    """One checked float per param group from a number or a list of ``n`` numbers."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} has {len(value)} values, the optimizer has "
                             f"{n} param group(s)")
        return [check_number(owner, f"{name}[{i}]", v, low=low, high=high)
                for i, v in enumerate(value)]
    return [check_number(owner, name, value, low=low, high=high)] * n


class _Container(LRScheduler):
    """SequentialLR and ChainedScheduler: their state dict nests their schedulers'."""

    _not_saved = ("optimizer", "_schedulers")

    def state_dict(self):
        out = super().state_dict()
        out["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return out

    def load_state_dict(self, state_dict):
        subs = state_dict.get("_schedulers") if isinstance(state_dict, dict) else None
        if not isinstance(subs, (list, tuple)) or len(subs) != len(self._schedulers):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a state dict "
                             f"with {len(self._schedulers)} '_schedulers' entries, got "
                             f"{len(subs) if isinstance(subs, (list, tuple)) else subs!r}")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "_schedulers"})
        for s, sd in zip(self._schedulers, subs):
            s.load_state_dict(sd)


def _check_schedulers(owner, schedulers, optimizer):
    """A non-empty list of step()-able schedulers, all built on ``optimizer``."""
    schedulers = list(schedulers) if isinstance(schedulers, (list, tuple)) else None
    if not schedulers:
        raise ValueError(f"{owner}: schedulers must be a non-empty list of schedulers")
    for i, s in enumerate(schedulers):
        if not isinstance(s, LRScheduler):
            raise TypeError(f"{owner}: schedulers[{i}] must be a scheduler, got "
                            f"{type(s).__name__}")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(f"{owner}: schedulers[{i}] is a ReduceLROnPlateau, which needs "
                             "the metric in step(metrics); step it on its own")
        if s.optimizer is not optimizer:
            raise ValueError(f"{owner}: schedulers[{i}] ({type(s).__name__}) is built on "
                             "another optimizer than the one given")
    return schedulers


class SequentialLR(_Container):
    """Run ``schedulers`` one after another, switching at the ``milestones`` steps: e.g. a
    linear warm-up for 5 epochs, then cosine annealing::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        cosine = CosineAnnealingLR(opt, T_max=epochs - 5)
        sched = SequentialLR(opt, [warmup, cosine], milestones=[5])

    At step ``milestones[i]`` scheduler ``i + 1`` restarts at its own step 0 (its closed form
    from ``base_lrs``, so ``cosine`` starts at the full lr); between milestones the current one
    steps. Construction resets the groups' lrs to ``initial_lr`` and starts scheduler 0.

    Args:
        optimizer: the optimizer all ``schedulers`` were built on.
        schedulers: list of schedulers (at least one).
        milestones: ``len(schedulers) - 1`` strictly increasing steps (ints >= 1).
    """

    def __init__(self, optimizer, schedulers, milestones):
        name = "SequentialLR"
        _check_optimizer(name, optimizer)
        schedulers = _check_schedulers(name, schedulers, optimizer)
        for i, s in enumerate(schedulers):
            if isinstance(s, _Container):
                raise ValueError(f"{name}: schedulers[{i}] is a {type(s).__name__}; nesting "
                                 "it in a SequentialLR is not supported")
        if not isinstance(milestones, (list, tuple)):
            raise TypeError(f"{name}: milestones must be a list of ints, got "
                            f"{type(milestones).__name__}")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{name}: expected {len(schedulers) - 1} milestone(s) for "
                             f"{len(schedulers)} schedulers, got {len(milestones)}")
        ms = [check_int(name, f"milestones[{i}]", m, low=1) for i, m in enumerate(milestones)]
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"{name}: milestones must be strictly increasing, got {ms}")
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = ms
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for s in schedulers:            # undo the step each took when it was built
            s.last_epoch -= 1
        self.last_epoch = -1
        self.step()

    def step(self):
        t = self.last_epoch + 1
        idx = bisect.bisect_right(self._milestones, t)
        current = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == t:
            current._restart()
        else:
            current.step()
        self.last_epoch = t
        self._last_lr = current.get_last_lr()



class ChainedScheduler(_Container):
    """Step several schedulers together, one ``step()`` for all: their chainable changes
    multiply (e.g. a ``ConstantLR`` warm-up on top of an ``ExponentialLR`` decay)::

        sched = ChainedScheduler([ConstantLR(opt, 0.1, total_iters=2), ExponentialLR(opt, 0.9)])

    Construction does not step (the schedulers have taken their first step when built).

    Args:
        schedulers: list of schedulers (at least one) built on the same optimizer.
        optimizer: that optimizer (default: the first scheduler's).
    """

    _group_lists = ("_last_lr",)

    def __init__(self, schedulers, optimizer=None):
        name = "ChainedScheduler"
        if not isinstance(schedulers, (list, tuple)) or not schedulers:
            raise ValueError(f"{name}: schedulers must be a non-empty list of schedulers, got "
                             f"{schedulers!r}")
        if optimizer is None:
            if not isinstance(schedulers[0], LRScheduler):
                raise TypeError(f"{name}: schedulers[0] must be a scheduler, got "
                                f"{type(schedulers[0]).__name__}")
            optimizer = schedulers[0].optimizer
        _check_optimizer(name, optimizer)
        self.optimizer = optimizer
        self._schedulers = _check_schedulers(name, schedulers, optimizer)
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    def step(self):
        for s in self._schedulers:
            s.step()
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]


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
        self.factor = check_number(name, "factor", factor, low=0.0, high=1.0, high_open=True)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group(name, "min_lr", min_lr, n, low=0.0)
        else:
            self.default_min_lr = check_number(name, "min_lr", min_lr, low=0.0)
            self.min_lrs = [self.default_min_lr] * n
        self.patience = check_int(name, "patience", patience, low=0)
        self.threshold = check_number(name, "threshold", threshold, low=0.0)
        if mode == "min" and threshold_mode == "rel" and self.threshold >= 1.0:
            raise ValueError(f"{name}: threshold must be < 1 with mode='min' and "
                             "threshold_mode='rel' (no value could count as an improvement), "
                             f"got {self.threshold!r}")
        self.cooldown = check_int(name, "cooldown", cooldown, low=0)
        self.eps = check_number(name, "eps", eps, low=0.0)
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
