"""Loss modules: thin wrappers over minidl.functional's losses."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class CrossEntropyLoss(Module):
    def __init__(self, label_smoothing=0.0, reduction="mean"):
        super().__init__()
        self.label_smoothing, self.reduction = label_smoothing, reduction

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.label_smoothing, self.reduction)

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"


class NLLLoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.nll_loss(input, target, self.reduction)


class BCEWithLogitsLoss(NLLLoss):
    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)


class MSELoss(NLLLoss):
    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)
