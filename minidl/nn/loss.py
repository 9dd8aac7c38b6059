"""Loss modules: thin wrappers over minidl.functional's losses, with PyTorch's signatures.

Arguments are checked when the module is built (a bad ``reduction`` fails at construction, not
at the first batch). Class weights and ``pos_weight`` are buffers, as in PyTorch (they follow
``.to(device)`` and appear in ``state_dict``).
"""
from __future__ import annotations

from .. import functional as F
from .._checks import check_bool, check_int, check_number
from ..functional.loss import REDUCTIONS, check_legacy, check_reduction
from ..functional._utils import check_float
from .module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean", allowed=REDUCTIONS):
        super().__init__()
        name = type(self).__name__
        check_legacy(name, size_average, reduce)
        check_reduction(name, reduction, allowed)
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        if weight is not None:
            check_float(type(self).__name__, "weight", weight)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """``F.cross_entropy`` as a module: class-index or class-probability targets."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int("CrossEntropyLoss", "ignore_index", ignore_index)
        self.label_smoothing = check_number("CrossEntropyLoss", "label_smoothing",
                                            label_smoothing, 0, 1)

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")


class NLLLoss(_WeightedLoss):
    """``F.nll_loss`` as a module (input: log-probabilities)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int("NLLLoss", "ignore_index", ignore_index)

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class BCELoss(_WeightedLoss):
    """``F.binary_cross_entropy`` as a module (input: probabilities in [0, 1])."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """``F.binary_cross_entropy_with_logits`` as a module."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(weight, size_average, reduce, reduction)
        if pos_weight is not None:
            check_float("BCEWithLogitsLoss", "pos_weight", pos_weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class L1Loss(_Loss):
    """``F.l1_loss`` as a module."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """``F.mse_loss`` as a module."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``F.smooth_l1_loss`` as a module."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = check_number("SmoothL1Loss", "beta", beta, 0)

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, beta={self.beta}"


class HuberLoss(_Loss):
    """``F.huber_loss`` as a module."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = check_number("HuberLoss", "delta", delta, 0, open_min=True)

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, delta={self.delta}"


class KLDivLoss(_Loss):
    """``F.kl_div`` as a module; use reduction='batchmean' for the KL divergence per sample."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction, REDUCTIONS + ("batchmean",))
        self.log_target = check_bool("KLDivLoss", "log_target", log_target)

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, log_target={self.log_target}"
