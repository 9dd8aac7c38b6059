"""Dropout layers: identity in eval mode."""
from __future__ import annotations

from .. import functional as F
from .._checks import check_number
from .module import Module


class Dropout(Module):
    """Zero entries with probability p while training, scaling the rest by 1/(1-p).
    (``inplace`` is accepted for PyTorch compatibility and ignored.)"""

    _op = "Dropout"

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = check_number(self._op, "p", p, 0, 1, open_max=True)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Zero whole channels of an (N, C, H, W) input with probability p while training."""

    _op = "Dropout2d"

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)
