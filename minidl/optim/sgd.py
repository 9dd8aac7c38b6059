"""Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from .. import backend

from .._checks import check_bool, check_number
from .optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's formulation.

    Update of each parameter ``p`` with gradient ``g`` at step ``t`` (1-based), where ``lr`` is
    the learning rate, ``mu`` the momentum, ``tau`` the dampening, ``wd`` the weight decay::

        g = g + wd * p                           (if wd != 0: L2 penalty)
        b = g                                    (if mu != 0 and t == 1)
        b = mu * b + (1 - tau) * g               (if mu != 0 and t > 1)
        d = g + mu * b  if nesterov  else  b     (d = g when mu == 0)
        p = p - lr * d

    The momentum buffer ``b`` is velocity in units of gradient (``lr`` is applied after it), as
    in PyTorch and unlike Sutskever et al., so changing ``lr`` mid-run keeps the velocity.

    Args:
        params: iterable of Parameters, or of dicts defining param groups.
        lr: learning rate (>= 0). Default: 1e-3, as PyTorch.
        momentum: momentum factor mu (>= 0). Default: 0.
        dampening: dampening tau for momentum, in [0, 1]. Default: 0.
        weight_decay: L2 penalty wd (>= 0). Default: 0.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0). Default: False.
        fused: update all of a group's parameters at once (see :class:`Optimizer`); default
            None: on for parameters on a GPU.

    State per parameter: ``momentum_buffer`` (when momentum != 0).
    """

    _state_names = ("momentum_buffer",)
    _capturable = True

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults, fused=fused)

    def _check_group(self, group, where):
        group["lr"] = check_number("SGD", "lr", group["lr"], 0, where=where)
        group["momentum"] = check_number("SGD", "momentum", group["momentum"], 0, where=where)
        group["dampening"] = check_number("SGD", "dampening", group["dampening"], 0, 1, where=where)
        group["weight_decay"] = check_number("SGD", "weight_decay", group["weight_decay"], 0,
                                             where=where)
        group["nesterov"] = check_bool("SGD", "nesterov", group["nesterov"], where=where)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True{where} needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r} and dampening={group['dampening']!r}")

    def _update(self, group, p, g, state):
        if group["weight_decay"] != 0:
            g = g + self._hyper(group, "weight_decay", p) * p
        if group["momentum"] != 0:
            mu = self._hyper(group, "momentum", p)
            # read on every step, not only once the buffer exists: a CUDA-graph capture may
            # read no value that its warm-up calls did not (minidl.cuda_graph)
            damp = self._hyper(group, "1 - dampening", p, lambda: 1.0 - group["dampening"]) \
                if group["dampening"] != 0 else None
            buf = state.get("momentum_buffer")
            if buf is None:         # an array even for a 0-d parameter (g + wd * p is a
                buf = state["momentum_buffer"] = backend.xp_of(p).array(g, p.dtype)   # scalar)
            else:
                buf *= mu
                if damp is not None:
                    buf += damp * g
                else:
                    buf += g
            g = g + mu * buf if group["nesterov"] else buf
        p -= self._hyper(group, "lr", p) * g
