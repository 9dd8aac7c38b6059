"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

import math

from .._checks import check_bool, check_number
from ..backend import xp_of
from .optimizer import Optimizer, ema_, state_buffer


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), PyTorch's formulation.

    Update of each parameter ``p`` with gradient ``g`` at step ``t`` (1-based); ``m``, ``v``
    and ``vmax`` start at 0::

        g    = g + wd * p                            (if wd != 0: L2 penalty, Adam only)
        m    = b1 * m + (1 - b1) * g                 (exp_avg)
        v    = b2 * v + (1 - b2) * g**2              (exp_avg_sq)
        vmax = max(vmax, v);  v' = vmax              (if amsgrad, else v' = v)
        p    = p - lr / (1 - b1**t) * m / (sqrt(v') / sqrt(1 - b2**t) + eps)

    i.e. ``p - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected moments
    ``m_hat = m / (1 - b1**t)``, ``v_hat = v' / (1 - b2**t)``.

    Args:
        params: iterable of Parameters, or of dicts defining param groups.
        lr: learning rate (>= 0). Default: 1e-3.
        betas: (b1, b2), decay rates of the moment estimates, each in [0, 1).
            Default: (0.9, 0.999).
        eps: term added to the denominator (> 0). Default: 1e-8.
        weight_decay: weight decay wd (>= 0), added to the gradient (L2). Default: 0.
        amsgrad: use the running maximum of ``v`` (Reddi et al., 2018). Default: False.
        fused: update all of a group's parameters at once (see :class:`Optimizer`); default
            None: on for parameters on a GPU.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    _state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _required_state = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False   # AdamW: decay the weights directly instead of through the gradient

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, fused=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults, fused=fused)

    def _check_group(self, group, where):
        name = type(self).__name__
        group["lr"] = check_number(name, "lr", group["lr"], 0, where=where)
        betas = group["betas"]
        if hasattr(betas, "tolist"):          # an array from a checkpoint
            betas = betas.tolist()
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas{where} must be a pair (beta1, beta2), got "
                            f"{type(betas).__name__} {betas!r}")
        group["betas"] = tuple(check_number(name, f"betas[{i}]", b, 0, 1, open_max=True,
                                            where=where) for i, b in enumerate(betas))
        group["eps"] = check_number(name, "eps", group["eps"], 0, open_min=True, where=where)
        group["weight_decay"] = check_number(name, "weight_decay", group["weight_decay"], 0,
                                             where=where)
        group["amsgrad"] = check_bool(name, "amsgrad", group["amsgrad"], where=where)

    def _update(self, group, p, g, state):
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        xp = xp_of(p)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if self._decoupled:
                p *= 1.0 - lr * wd
            else:
                g = g + wd * p
        m = ema_(state["exp_avg"], beta1, g)
        v = ema_(state["exp_avg_sq"], beta2, g * g)
        if group["amsgrad"]:
            vmax = state_buffer(state, "max_exp_avg_sq", p)
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        # bias corrections are host-side Python floats: no device sync
        step_size = lr / (1.0 - beta1 ** t)
        denom = xp.sqrt(v)
        denom /= math.sqrt(1.0 - beta2 ** t)
        denom += eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    Same as :class:`Adam` except that weight decay shrinks the parameter directly, scaled by
    the current learning rate, instead of being added to the gradient (where Adam's
    normalization would weaken it)::

        p = p * (1 - lr * wd)                        (before the Adam update)
        m, v, vmax as in Adam, computed from the raw gradient g
        p = p - lr / (1 - b1**t) * m / (sqrt(v') / sqrt(1 - b2**t) + eps)

    Args:
        params: iterable of Parameters, or of dicts defining param groups.
        lr: learning rate (>= 0). Default: 1e-3.
        betas: (b1, b2), each in [0, 1). Default: (0.9, 0.999).
        eps: term added to the denominator (> 0). Default: 1e-8.
        weight_decay: decoupled weight decay wd (>= 0). Default: 1e-2.
        amsgrad: use the running maximum of ``v``. Default: False.
        fused: as in :class:`Adam`.

    Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, fused=fused)
