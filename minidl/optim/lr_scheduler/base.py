"""The scheduler base class (``LRScheduler``): stepping, ``get_last_lr``, state dicts."""
from __future__ import annotations

import copy

import numpy as np

from ..._checks import check_number
from ..optimizer import Optimizer


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


def _per_group(owner, name, value, n, low=None, high=None):
    """One checked float per param group from a number or a list of ``n`` numbers."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} has {len(value)} values, the optimizer has "
                             f"{n} param group(s)")
        return [check_number(owner, f"{name}[{i}]", v, low, high)
                for i, v in enumerate(value)]
    return [check_number(owner, name, value, low, high)] * n
