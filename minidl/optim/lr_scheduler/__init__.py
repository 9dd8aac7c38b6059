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
(``step(val_loss)``) and lowers the lr when the metric stops improving. SWALR anneals to the
constant lr of Stochastic Weight Averaging (see ``minidl.optim.swa_utils``).

``state_dict()`` holds only Python numbers, strings and lists (no optimizer); restore the
optimizer's own state dict alongside it, since the current lrs live in its param groups.
"""
from .base import LRScheduler
from .closed_form import (ConstantLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR,
                          MultiStepLR, PolynomialLR, StepLR)
from .containers import ChainedScheduler, SequentialLR
from .cosine import CosineAnnealingLR, CosineAnnealingWarmRestarts, OneCycleLR
from .plateau import ReduceLROnPlateau
from .swa import SWALR

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "LinearLR", "LambdaLR", "MultiplicativeLR",
           "ExponentialLR", "ConstantLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR", "ChainedScheduler",
           "ReduceLROnPlateau", "SWALR"]
