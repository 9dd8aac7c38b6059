"""Adagrad: per-coordinate learning rates from the sum of all past squared gradients."""
from __future__ import annotations

from .._checks import check_number
from ..backend import xp_of
from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), PyTorch's formulation.

    Update of each parameter ``p`` with gradient ``g`` at step ``t`` (1-based); the sum ``s``
    starts at ``initial_accumulator_value``::

        g   = g + wd * p                        (if wd != 0: L2 penalty)
        clr = lr / (1 + (t - 1) * lr_decay)
        s   = s + g**2                          (sum)
        p   = p - clr * g / (sqrt(s) + eps)

    Args:
        params: iterable of Parameters, or of dicts defining param groups.
        lr: learning rate (>= 0). Default: 1e-2.
        lr_decay: learning-rate decay per step (>= 0). Default: 0.
        weight_decay: L2 penalty wd (>= 0). Default: 0.
        initial_accumulator_value: starting value of ``s`` (>= 0). Default: 0.
        eps: term added to the denominator (> 0; PyTorch also takes 0, which divides 0 by 0
            where a gradient has been 0 from the start). Default: 1e-10.
        fused: update all of a group's parameters at once (see :class:`Optimizer`); default
            None: on for parameters on a GPU.

    State per parameter: ``step``, ``sum`` (created at the first step; PyTorch creates them
    when the optimizer is built, so its ``state_dict()`` lists parameters never stepped).

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.
    """

    _state_names = ("step", "sum")
    _required_state = ("step", "sum")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, defaults, fused=fused)

    def _check_group(self, group, where):
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value"):
            group[key] = check_number("Adagrad", key, group[key], 0, where=where)
        group["eps"] = check_number("Adagrad", "eps", group["eps"], 0, open_min=True, where=where)

    def _update(self, group, p, g, state):
        wd = float(group["weight_decay"])
        xp = xp_of(p)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p, float(group["initial_accumulator_value"]))
        state["step"] += 1
        if wd != 0:
            g = g + wd * p
        # a host-side Python float: no device sync
        clr = float(group["lr"]) / (1.0 + (state["step"] - 1) * float(group["lr_decay"]))
        s = state["sum"]
        s += g * g
        std = xp.sqrt(s)
        std += float(group["eps"])
        p -= clr * (g / std)
