"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

from .._checks import check_bool, check_number
from ..backend import xp_of
from .optimizer import Optimizer, ema_, state_buffer


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), PyTorch's formulation.

    Update of each parameter ``p`` with gradient ``g``; ``v``, ``gbar`` and ``b`` start at 0::

        g    = g + wd * p                           (if wd != 0: L2 penalty)
        v    = alpha * v + (1 - alpha) * g**2       (square_avg)
        gbar = alpha * gbar + (1 - alpha) * g       (grad_avg, only if centered)
        s    = sqrt(v - gbar**2) + eps  if centered  else  sqrt(v) + eps
        b    = mu * b + g / s;  p = p - lr * b      (if momentum mu > 0)
        p    = p - lr * g / s                       (otherwise)

    ``eps`` is added outside the square root, as in PyTorch; ``v - gbar**2`` (never negative in
    exact arithmetic) is clamped at 0 so rounding cannot make it NaN. Centered RMSprop
    normalizes by an estimate of the gradient's variance instead of its second moment.

    Args:
        params: iterable of Parameters, or of dicts defining param groups.
        lr: learning rate (>= 0). Default: 1e-2.
        alpha: smoothing constant of the running averages, in [0, 1]. Default: 0.99.
        eps: term added to the denominator (> 0). Default: 1e-8.
        weight_decay: L2 penalty wd (>= 0). Default: 0.
        momentum: momentum factor mu (>= 0). Default: 0.
        centered: normalize by the centered second moment. Default: False.
        fused: update all of a group's parameters at once (see :class:`Optimizer`); default
            None: on for parameters on a GPU.

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0),
    ``grad_avg`` (centered).
    """

    _state_names = ("step", "square_avg", "momentum_buffer", "grad_avg")
    _required_state = ("step", "square_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, fused=None):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered)
        super().__init__(params, defaults, fused=fused)

    def _check_group(self, group, where):
        group["lr"] = check_number("RMSprop", "lr", group["lr"], 0, where=where)
        group["alpha"] = check_number("RMSprop", "alpha", group["alpha"], 0, 1, where=where)
        group["eps"] = check_number("RMSprop", "eps", group["eps"], 0, open_min=True, where=where)
        group["weight_decay"] = check_number("RMSprop", "weight_decay", group["weight_decay"], 0,
                                             where=where)
        group["momentum"] = check_number("RMSprop", "momentum", group["momentum"], 0, where=where)
        group["centered"] = check_bool("RMSprop", "centered", group["centered"], where=where)

    def _update(self, group, p, g, state):
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        mu = float(group["momentum"])
        xp = xp_of(p)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p)
        state["step"] += 1
        if wd != 0:
            g = g + wd * p
        v = ema_(state["square_avg"], alpha, g * g)
        if group["centered"]:
            gbar = ema_(state_buffer(state, "grad_avg", p), alpha, g)
            # v >= gbar**2 in exact arithmetic; clamp the rounding error (a NaN otherwise,
            # e.g. after thousands of steps of a constant gradient in float32)
            denom = xp.sqrt(xp.maximum(v - gbar * gbar, 0.0))
        else:
            denom = xp.sqrt(v)
        denom += eps
        if mu > 0:
            buf = state_buffer(state, "momentum_buffer", p)
            buf *= mu
            buf += g / denom
            p -= lr * buf
        else:
            p -= lr * (g / denom)
