"""Cosine and one-cycle schedules: CosineAnnealingLR, CosineAnnealingWarmRestarts,
OneCycleLR."""
from __future__ import annotations

import math

import numpy as np

from ..._checks import check_bool, check_int, check_number
from .base import LRScheduler, _check_optimizer, _per_group


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
        self.T_max = check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min, 0)
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
        self.T_0 = check_int(name, "T_0", T_0, 1)
        self.T_mult = check_int(name, "T_mult", T_mult, 1)
        self.eta_min = check_number(name, "eta_min", eta_min, 0)
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
                epoch = check_number("CosineAnnealingWarmRestarts.step", "epoch", epoch, 0)
                if math.isinf(epoch):
                    raise ValueError("CosineAnnealingWarmRestarts.step: epoch must be "
                                     f"finite, got {epoch!r}")
            else:
                epoch = check_int("CosineAnnealingWarmRestarts.step", "epoch", epoch, 0)
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
            total_steps = (check_int(name, "epochs", epochs, 1)
                           * check_int(name, "steps_per_epoch", steps_per_epoch, 1))
        self.total_steps = check_int(name, "total_steps", total_steps, 1)
        pct_start = check_number(name, "pct_start", pct_start, 0, 1)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = check_bool(name, "cycle_momentum", cycle_momentum)
        self.three_phase = check_bool(name, "three_phase", three_phase)
        div_factor = check_number(name, "div_factor", div_factor, 0, open_min=True)
        final_div = check_number(name, "final_div_factor", final_div_factor, 0, open_min=True)
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
