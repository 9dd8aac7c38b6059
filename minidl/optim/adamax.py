"""Adamax: Adam with the infinity norm of past gradients in place of their second moment."""
from __future__ import annotations

from .._checks import check_number
from ..backend import xp_of
from .optimizer import Optimizer, ema_


class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2015, section 7.1), PyTorch's formulation.

    Update of each parameter ``p`` with gradient ``g`` at step ``t`` (1-based); ``m`` and
    ``u`` start at 0::

        g = g + wd * p                          (if wd != 0: L2 penalty)
        m = b1 * m + (1 - b1) * g               (exp_avg)
        u = max(b2 * u, |g| + eps)              (exp_inf)
        p = p - lr / (1 - b1**t) * m / u

    Args:
        params: iterable of Parameters, or of dicts defining param groups.
        lr: learning rate (>= 0). Default: 2e-3.
        betas: (b1, b2), decay rates of ``m`` and ``u``, each in [0, 1).
            Default: (0.9, 0.999).
        eps: term added to ``|g|`` (> 0). Default: 1e-8.
        weight_decay: L2 penalty wd (>= 0). Default: 0.
        fused: update all of a group's parameters at once (see :class:`Optimizer`); default
            None: on for parameters on a GPU.

    State per parameter: ``step``, ``exp_avg``, ``exp_inf``.

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    _state_names = ("step", "exp_avg", "exp_inf")
    _required_state = ("step", "exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
                 fused=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, fused=fused)

    def _check_group(self, group, where):
        group["lr"] = check_number("Adamax", "lr", group["lr"], 0, where=where)
        betas = group["betas"]
        if hasattr(betas, "tolist"):          # an array from a checkpoint
            betas = betas.tolist()
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adamax: betas{where} must be a pair (beta1, beta2), got "
                            f"{type(betas).__name__} {betas!r}")
        group["betas"] = tuple(check_number("Adamax", f"betas[{i}]", b, 0, 1, open_max=True,
                                            where=where)
                               for i, b in enumerate(betas))
        group["eps"] = check_number("Adamax", "eps", group["eps"], 0, open_min=True, where=where)
        group["weight_decay"] = check_number("Adamax", "weight_decay", group["weight_decay"], 0,
                                             where=where)

    def _update(self, group, p, g, state):
        beta1, beta2 = (float(b) for b in group["betas"])
        wd = float(group["weight_decay"])
        xp = xp_of(p)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_inf"] = xp.zeros_like(p)
        state["step"] += 1
        if wd != 0:
            g = g + wd * p
        m = ema_(state["exp_avg"], beta1, g)
        u = state["exp_inf"]
        u *= beta2
        norm = xp.abs(g)
        norm += float(group["eps"])
        xp.maximum(u, norm, out=u)
        # the bias correction is a host-side Python float: no device sync
        p -= float(group["lr"]) / (1.0 - beta1 ** state["step"]) * (m / u)
