"""Losses: cross_entropy, nll_loss, binary_cross_entropy_with_logits, mse_loss.

Each is one Function with a closed-form backward, computed stably: log-sum-exp with the max
subtracted for softmax losses, log1p(exp(-|x|)) for the logistic one, so logits of 1e4 give
finite losses and gradients.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor, is_real
from ._utils import check_float, check_tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _expand_reduced(gy, shape, reduction):
    """Gradient of the reduction, as a per-element factor broadcastable to ``shape``."""
    if reduction == "none":
        return gy
    n = 1
    for s in shape:
        n *= s
    if reduction == "sum":
        return gy
    return gy * (1.0 / n if n else float("nan"))      # an empty batch's mean is NaN too


class CrossEntropy(Function):
    """loss_i = -sum_c q_ic log softmax(x_i)_c with q_i = (1 - s) onehot(t_i) + s / C.

    Gradient: gx_i = (softmax(x_i) - q_i) * g_i, where g_i is the upstream gradient of loss_i
    (gy / N for 'mean', gy for 'sum').
    """

    def __init__(self, smoothing, reduction):
        self.smoothing, self.reduction = smoothing, reduction

    def forward(self, x, t):
        xp = backend.xp_of(x)
        shifted = x - x.max(axis=1, keepdims=True)
        logz = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - logz                                   # (N, C)
        picked = xp.take_along_axis(logp, t[:, None], axis=1)[:, 0]
        loss = -picked
        if self.smoothing:
            s, C = self.smoothing, x.shape[1]
            loss = (1.0 - s) * loss - (s / C) * logp.sum(axis=1)
        self.save_for_backward(logp, t)
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        logp, t = self.saved
        xp = backend.xp_of(logp)
        N, C = logp.shape
        gx = xp.exp(logp)
        s = self.smoothing
        if s:
            gx -= s / C
        gx[xp.arange(N), t] -= 1.0 - s          # each row has one label: no repeats
        g = _expand_reduced(gy, (N,), self.reduction)
        return gx * (g[:, None] if self.reduction == "none" else g), None


class NLLLoss(Function):
    """loss_i = -x_i[t_i] (x holds log-probabilities).
    Gradient: gx_i = -g_i at column t_i, 0 elsewhere."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        xp = backend.xp_of(x)
        self.save_for_backward(t)
        self.shape = x.shape
        return _reduce(-xp.take_along_axis(x, t[:, None], axis=1)[:, 0], self.reduction)

    def backward(self, gy):
        (t,) = self.saved
        xp = backend.xp_of(gy)
        N = self.shape[0]
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        g = _expand_reduced(gy, (N,), self.reduction)
        gx[xp.arange(N), t] = -g
        return gx, None


class BCEWithLogits(Function):
    """loss = max(x, 0) - x t + log(1 + exp(-|x|)) (= -t log s(x) - (1-t) log(1-s(x))).
    Gradient: gx = (sigmoid(x) - t) * g, gt = -x * g."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        xp = backend.xp_of(x)
        self.save_for_backward(x, t)
        loss = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        x, t = self.saved
        xp = backend.xp_of(x)
        z = xp.exp(-xp.abs(x))
        sig = xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
        g = _expand_reduced(gy, x.shape, self.reduction)
        gx = (sig - t) * g if self.needs_input_grad[0] else None
        gt = -x * g if self.needs_input_grad[1] else None
        return gx, gt


class MSELoss(Function):
    """loss = (x - t)^2.  Gradient: gx = 2 (x - t) g, gt = -gx."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        d = x - t
        self.save_for_backward(d)
        return _reduce(d * d, self.reduction)

    def backward(self, gy):
        (d,) = self.saved
        gx = d * (2.0 * _expand_reduced(gy, d.shape, self.reduction))
        return (gx if self.needs_input_grad[0] else None,
                -gx if self.needs_input_grad[1] else None)


# ---------------------------------------------------------------------------------------------

def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: 'reduction' must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_class_target(op, input, target):
    """(N, C) float input, (N,) integer labels in [0, C) on the same device; returns the
    target to use (clamped into range while a GPU check of the labels is pending)."""
    check_float(op, "input", input)
    check_tensor(op, "target", target)
    if input.ndim != 2:
        raise ValueError(f"{op}: 'input' must be 2-D (N, C), got shape {input.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'target' must hold integer class labels, got dtype "
                        f"{target.dtype} (convert with .long())")
    if target.shape != (input.shape[0],):
        raise ValueError(f"{op}: 'target' must have shape ({input.shape[0]},) to match input "
                         f"{input.shape}, got {target.shape}")
    if target.device != input.device:
        raise RuntimeError(f"{op}: 'target' is on {target.device}, 'input' on {input.device}")
    if target.shape[0]:
        t, n_classes = target.data, input.shape[1]

        def error():
            lo, hi = int(t.min()), int(t.max())
            if 0 <= lo and hi < n_classes:      # a CUDA graph replayed other labels since
                return ValueError(f"{op}: 'target' held a label outside [0, {n_classes}) for "
                                  f"{n_classes} classes in a step since the last "
                                  "synchronization")
            bad = lo if lo < 0 else hi
            return ValueError(f"{op}: 'target' holds label {bad}, outside [0, {n_classes}) for "
                              f"{n_classes} classes")
        # on a GPU the flag is read back at the next sync, not here (no wait per step); until
        # then the labels are clamped so that no index falls outside the logits
        if backend.check_later(((t < 0) | (t >= n_classes)).any(), error):
            target = Tensor(backend.xp_of(t).clip(t, 0, n_classes - 1))
    return target


def cross_entropy(input, target, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy of logits ``input`` (N, C) against integer labels ``target`` (N,).

    ``label_smoothing`` s mixes the one-hot target with the uniform distribution:
    q = (1 - s) onehot + s / C, as in PyTorch.
    """
    target = _check_class_target("cross_entropy", input, target)
    _check_reduction("cross_entropy", reduction)
    if not is_real(label_smoothing) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: 'label_smoothing' must be a number in [0, 1], got "
                         f"{label_smoothing!r}")
    return CrossEntropy(float(label_smoothing), reduction)(input, target)


def nll_loss(input, target, reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at labels ``target``."""
    target = _check_class_target("nll_loss", input, target)
    _check_reduction("nll_loss", reduction)
    return NLLLoss(reduction)(input, target)


def _check_same_shape(op, input, target):
    check_float(op, "input", input)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: 'target' must be a Tensor, got {type(target).__name__}")
    check_float(op, "target", target)
    if target.shape != input.shape:
        raise ValueError(f"{op}: 'target' shape {target.shape} must equal 'input' shape "
                         f"{input.shape}")


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    """Logistic loss of logits ``input`` against probabilities ``target`` (same shape)."""
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    return BCEWithLogits(reduction)(input, target)


def mse_loss(input, target, reduction="mean"):
    """Squared error (input - target)^2, averaged by default."""
    _check_same_shape("mse_loss", input, target)
    _check_reduction("mse_loss", reduction)
    return MSELoss(reduction)(input, target)
