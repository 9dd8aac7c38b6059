"""Schedulers of schedulers: SequentialLR (one after another) and ChainedScheduler (all
at once)."""
from __future__ import annotations

import bisect

from ..._checks import check_int
from .base import LRScheduler, _check_optimizer
from .plateau import ReduceLROnPlateau


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
        ms = [check_int(name, f"milestones[{i}]", m, 1) for i, m in enumerate(milestones)]
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
