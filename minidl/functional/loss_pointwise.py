"""Element-wise losses: binary_cross_entropy(_with_logits), l1_loss, mse_loss, smooth_l1_loss,
huber_loss, kl_div.

Each is one Function: loss_k = f(x_k, t_k) for every element k, then 'none' | 'mean' | 'sum'
(kl_div also 'batchmean'). Unlike PyTorch, which warns and broadcasts a target of another shape
for some of them, minidl requires ``target`` to have exactly ``input``'s shape (and dtype).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_bool, check_number
from ..autograd import Function
from ..tensor import Tensor
from ._utils import check_float, type_name
from .loss import (REDUCTIONS, _expand_reduced, _reduce, check_legacy, check_reduction,
                   constant_weight)


class BCE(Function):
    """loss = -w (t log x + (1 - t) log(1 - x)), each log clamped at -100 as in PyTorch.

    Gradient: gx = g w (x - t) / max(x (1 - x), 1e-12), gt = g w (log(1 - x) - log x) with
    the logs clamped as in the forward (so +-100 w g at x = 0 or 1, where PyTorch's target
    gradient, -logit(x) unclamped, is infinite)."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t, w=None):
        xp = backend.xp_of(x)
        with np.errstate(divide="ignore", invalid="ignore"):     # log(0) = -inf, clamped
            logx = xp.maximum(xp.log(x), -100.0)
            log1mx = xp.maximum(xp.log1p(-x), -100.0)
        loss = -(t * logx + (1.0 - t) * log1mx)
        if w is not None:
            loss *= w
        self.save_for_backward(x, t, w, logx, log1mx)
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        x, t, w, logx, log1mx = self.saved
        xp = backend.xp_of(x)
        g = _expand_reduced(gy, x.shape, self.reduction)
        if w is not None:
            g = g * w
        gx = gt = None
        if self.needs_input_grad[0]:
            gx = (x - t) / xp.maximum(x * (1.0 - x), 1e-12) * g
        if self.needs_input_grad[1]:
            gt = (log1mx - logx) * g
        return gx, gt, None


class BCEWithLogits(Function):
    """loss = w ((1 - t) x + l softplus(-x)) with l = 1 + (p - 1) t (p = pos_weight, 1 if none),
    i.e. -w (p t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), with
    softplus(-x) = max(-x, 0) + log(1 + exp(-|x|)) so it stays finite for any x.

    Gradient: gx = g w ((1 - t) - l sigmoid(-x)) (= g w (sigmoid(x) - t) when p = 1),
    gt = g w ((p - 1) softplus(-x) - x)."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t, w=None, p=None):
        xp = backend.xp_of(x)
        sp = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))     # softplus(-x)
        loss = (1.0 - t) * x + (sp if p is None else (1.0 + (p - 1.0) * t) * sp)
        if w is not None:
            loss *= w
        self.save_for_backward(x, t, w, p, sp)
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        x, t, w, p, sp = self.saved
        xp = backend.xp_of(x)
        g = _expand_reduced(gy, x.shape, self.reduction)
        if w is not None:
            g = g * w
        gx = gt = None
        if self.needs_input_grad[0]:
            z = xp.exp(-xp.abs(x))
            sig_neg = xp.where(x >= 0, z / (1.0 + z), 1.0 / (1.0 + z))     # sigmoid(-x)
            lw = 1.0 if p is None else 1.0 + (p - 1.0) * t
            gx = ((1.0 - t) - lw * sig_neg) * g
        if self.needs_input_grad[1]:
            gt = (-x if p is None else (p - 1.0) * sp - x) * g
        return gx, gt, None, None


class L1Loss(Function):
    """loss = |x - t|.  Gradient: gx = sign(x - t) g (0 where x = t, as PyTorch), gt = -gx."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        d = x - t
        self.save_for_backward(d)
        return _reduce(backend.xp_of(d).abs(d), self.reduction)

    def backward(self, gy):
        (d,) = self.saved
        gx = backend.xp_of(d).sign(d) * _expand_reduced(gy, d.shape, self.reduction)
        return (gx if self.needs_input_grad[0] else None,
                -gx if self.needs_input_grad[1] else None)


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


class Huber(Function):
    """With d = x - t and delta > 0: h(d) = d^2 / 2 where |d| < delta, else
    delta (|d| - delta / 2); loss = h(d) / delta for smooth_l1 (beta = delta), h(d) for huber.

    Gradient: gx = g h'(d) / (delta or 1) with h'(d) = d where |d| < delta, else
    delta sign(d) (the two agree at |d| = delta); gt = -gx."""

    def __init__(self, delta, divide, reduction):
        self.delta, self.divide, self.reduction = delta, divide, reduction

    def forward(self, x, t):
        xp = backend.xp_of(x)
        d = x - t
        a = xp.abs(d)
        delta = self.delta
        loss = xp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
        if self.divide:
            loss *= 1.0 / delta
        self.save_for_backward(d)
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        (d,) = self.saved
        xp = backend.xp_of(d)
        delta = self.delta
        g = _expand_reduced(gy, d.shape, self.reduction)
        gx = xp.clip(d, -delta, delta) * ((1.0 / delta) * g if self.divide else g)
        return (gx if self.needs_input_grad[0] else None,
                -gx if self.needs_input_grad[1] else None)


class KLDiv(Function):
    """Pointwise KL divergence, ``x`` = log q (log-probabilities), target p:
    loss = p (log p - x) (0 where p = 0), or with log_target (t = log p): exp(t) (t - x).
    'batchmean' divides the sum by the batch size x.shape[0].

    Gradient: gx = -p g; gt = (log p + 1 - x) g (NaN where p <= 0, as PyTorch), or with
    log_target gt = exp(t) (t - x + 1) g."""

    def __init__(self, log_target, reduction):
        self.log_target, self.reduction = log_target, reduction

    def forward(self, x, t):
        xp = backend.xp_of(x)
        if self.log_target:
            p = xp.exp(t)
            loss = p * (t - x)
        else:
            p = t
            with np.errstate(divide="ignore", invalid="ignore"):     # p log p -> 0 at p = 0
                loss = xp.where(t == 0, 0.0, t * xp.log(t)).astype(x.dtype) - t * x
        self.save_for_backward(x, t, p)
        if self.reduction == "batchmean":
            with np.errstate(invalid="ignore", divide="ignore"):
                return loss.sum() / (x.shape[0] if x.ndim else 1)
        return _reduce(loss, self.reduction)

    def backward(self, gy):
        x, t, p = self.saved
        xp = backend.xp_of(x)
        if self.reduction == "batchmean":
            n = x.shape[0] if x.ndim else 1
            g = gy * (1.0 / n if n else float("nan"))
        else:
            g = _expand_reduced(gy, x.shape, self.reduction)
        gx = -p * g if self.needs_input_grad[0] else None
        gt = None
        if self.needs_input_grad[1]:
            if self.log_target:
                gt = p * (t - x + 1.0) * g
            else:
                logp = xp.log(xp.where(t > 0, t, 1.0).astype(t.dtype))
                gt = xp.where(t > 0, logp + 1.0 - x, float("nan")).astype(t.dtype) * g
        return gx, gt


# ---------------------------------------------------------------------------------------------

def _check_pair(op, input, target):
    check_float(op, "input", input)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: argument 'target' must be a Tensor, got {type_name(target)}")
    check_float(op, "target", target)
    if target.shape != input.shape:
        raise ValueError(f"{op}: 'target' shape {target.shape} must equal 'input' shape "
                         f"{input.shape} (minidl does not broadcast a loss's target; PyTorch "
                         "warns or refuses)")
    if target.dtype != input.dtype:
        raise TypeError(f"{op}: 'target' has dtype {target.dtype}, 'input' {input.dtype}; "
                        "they must match")
    if target.device != input.device:
        raise RuntimeError(f"{op}: 'target' is on {target.device}, 'input' on {input.device}")


def _check_elem_weight(op, arg, weight, input):
    """An optional float Tensor that broadcasts to input's shape; the raw array or None.
    Such weights are constants here (no gradient)."""
    if weight is None:
        return None
    check_float(op, arg, weight)
    try:
        ok = np.broadcast_shapes(weight.shape, input.shape) == input.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: '{arg}' of shape {weight.shape} must broadcast to input's "
                         f"shape {input.shape}")
    return constant_weight(op, arg, weight, input, "minidl treats it as a constant")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross-entropy of probabilities ``input`` (values in [0, 1]) against ``target``
    (same shape): -w (t log x + (1 - t) log(1 - x)), each log clamped at -100 (PyTorch's rule,
    so x = 0 or 1 gives a finite loss). ``weight`` broadcasts to input's shape. An input or a
    target outside [0, 1] (or NaN) raises ValueError (on a GPU at the next synchronization),
    as in PyTorch.
    Gradient: see ``BCE``; prefer binary_cross_entropy_with_logits (stable, no clamping)."""
    op = "binary_cross_entropy"
    check_legacy(op, size_average, reduce)
    _check_pair(op, input, target)
    check_reduction(op, reduction)
    w = _check_elem_weight(op, "weight", weight, input)
    for name, hint in (("input", " (use binary_cross_entropy_with_logits for logits)"),
                       ("target", "")):
        a = (input if name == "input" else target).data
        backend.check_later(
            (~((a >= 0) & (a <= 1))).any(),
            lambda name=name, hint=hint: ValueError(
                f"{op}: all elements of '{name}' must be probabilities in [0, 1], found "
                f"values outside{hint}"))
    return BCE(reduction)(input, target, w)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """Logistic loss of logits ``input`` against probabilities ``target`` (same shape):
    -w (p t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), computed stably. ``weight`` and
    ``pos_weight`` (p, e.g. (C,) for input (N, C)) broadcast to input's shape.
    Gradient: see ``BCEWithLogits``."""
    op = "binary_cross_entropy_with_logits"
    check_legacy(op, size_average, reduce)
    _check_pair(op, input, target)
    check_reduction(op, reduction)
    w = _check_elem_weight(op, "weight", weight, input)
    p = _check_elem_weight(op, "pos_weight", pos_weight, input)
    return BCEWithLogits(reduction)(input, target, w, p)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Absolute error |input - target|; ``target`` must have input's shape (no broadcasting).
    Gradient: sign(input - target), 0 where they are equal."""
    check_legacy("l1_loss", size_average, reduce)
    _check_pair("l1_loss", input, target)
    check_reduction("l1_loss", reduction)
    return L1Loss(reduction)(input, target)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Squared error (input - target)^2; ``target`` must have input's shape (no broadcasting).
    Gradient: 2 (input - target)."""
    check_legacy("mse_loss", size_average, reduce)
    _check_pair("mse_loss", input, target)
    check_reduction("mse_loss", reduction)
    return MSELoss(reduction)(input, target)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1: with d = input - target, d^2 / (2 beta) where |d| < beta, else
    |d| - beta / 2; beta = 0 gives l1_loss. ``target`` must have input's shape.
    Gradient: d / beta where |d| < beta, else sign(d)."""
    op = "smooth_l1_loss"
    check_legacy(op, size_average, reduce)
    _check_pair(op, input, target)
    check_reduction(op, reduction)
    beta = check_number(op, "beta", beta, 0)
    if beta == 0.0:
        return L1Loss(reduction)(input, target)
    return Huber(beta, True, reduction)(input, target)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """Huber loss: with d = input - target, d^2 / 2 where |d| <= delta, else
    delta (|d| - delta / 2) (= delta * smooth_l1_loss with beta = delta). ``target`` must have
    input's shape. Gradient: d where |d| <= delta, else delta sign(d)."""
    _check_pair("huber_loss", input, target)
    check_reduction("huber_loss", reduction)
    delta = check_number("huber_loss", "delta", delta, 0, open_min=True)
    return Huber(delta, False, reduction)(input, target)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL divergence, pointwise p (log p - input) with ``input`` log-probabilities and
    ``target`` p (or log p with ``log_target``), same shape. ``reduction='batchmean'`` divides
    the sum by the batch size (the true KL divergence per sample); 'mean' averages over every
    element, as PyTorch does (which warns about it). Gradient: see ``KLDiv``."""
    op = "kl_div"
    check_legacy(op, size_average, reduce)
    _check_pair(op, input, target)
    check_reduction(op, reduction, REDUCTIONS + ("batchmean",))
    return KLDiv(check_bool(op, "log_target", log_target), reduction)(input, target)
