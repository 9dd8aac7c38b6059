"""``SWALR``: the learning rate of Stochastic Weight Averaging's last phase (PyTorch's
``torch.optim.swa_utils.SWALR``; also importable from ``minidl.optim.swa_utils``, next to
``AveragedModel`` and ``update_bn``)."""
from __future__ import annotations

import math

from ..._checks import check_int
from .base import LRScheduler, _check_optimizer, _per_group

__all__ = ["SWALR"]


class SWALR(LRScheduler):
    """Anneal each group's lr to ``swa_lr`` over ``anneal_epochs`` steps, then hold it there.

    With ``lr0`` the group's lr when annealing starts, ``t`` the steps taken and
    ``E = max(1, anneal_epochs)``::

        alpha(t) = f(min(1, t / E)),   f(s) = (1 - cos(pi * s)) / 2  ("cos")  or  s  ("linear")
        lr(t) = alpha(t) * swa_lr + (1 - alpha(t)) * lr0

    so ``lr(0) = lr0`` (``swa_lr`` at once with ``anneal_epochs=0``). Each step finds ``lr0``
    from the group's current lr (as PyTorch does), so an lr changed by hand carries on. The
    groups get a ``'swa_lr'`` entry.

    Args:
        optimizer: the optimizer whose groups' lrs are set.
        swa_lr: the final lr (>= 0), one for all groups or a list with one per group.
        anneal_epochs: steps of the annealing (int >= 0). Default: 10.
        anneal_strategy: ``"cos"`` or ``"linear"``. Default: ``"cos"``.
        last_epoch: the index of the last step when resuming (-1: start afresh; otherwise
            the groups must hold ``'initial_lr'``, and annealing counts from this point).

    Reference: Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
    Generalization", UAI 2018.
    """

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos",
                 last_epoch=-1):
        op = "SWALR"
        _check_optimizer(op, optimizer)
        groups = optimizer.param_groups
        swa_lrs = _per_group(op, "swa_lr", swa_lr, len(groups), 0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{op}: 'anneal_strategy' must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_epochs = check_int(op, "anneal_epochs", anneal_epochs, 0)
        last_epoch = check_int(op, "last_epoch", last_epoch, -1)
        if last_epoch != -1:
            for i, group in enumerate(groups):
                if "initial_lr" not in group:
                    raise ValueError(f"{op}: 'last_epoch' is {last_epoch}, resuming, but "
                                     f"param group {i} has no 'initial_lr'")
        self.anneal_strategy = anneal_strategy
        self._start = 0                  # the last_epoch at which annealing starts
        for group, lr in zip(groups, swa_lrs):
            group["swa_lr"] = lr
        super().__init__(optimizer)
        self.last_epoch = self._start = last_epoch + 1

    @property
    def anneal_func(self):
        """The annealing curve ``f``: [0, 1] -> [0, 1]."""
        if self.anneal_strategy == "cos":
            return lambda s: (1.0 - math.cos(math.pi * s)) / 2.0
        return lambda s: s

    def get_lr(self):
        t = self.last_epoch - self._start
        if self.anneal_epochs == 0:
            t = max(1, t)
        E, f = max(1, self.anneal_epochs), self.anneal_func
        prev = f(min(1.0, max(0.0, (t - 1) / E)))
        alpha = f(min(1.0, max(0.0, t / E)))
        lrs = []
        for group in self.optimizer.param_groups:
            swa, lr = group["swa_lr"], group["lr"]
            lr0 = swa if prev == 1 else (lr - prev * swa) / (1.0 - prev)
            lrs.append(alpha * swa + (1.0 - alpha) * lr0)
        return lrs

    def _restart(self):
        self._start = 0
        super()._restart()
