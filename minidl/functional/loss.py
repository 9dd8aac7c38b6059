"""Classification losses: cross_entropy and nll_loss (class-index or class-probability targets,
class weights, ignore_index, label smoothing, inputs (N, C) or (N, C, d1, d2, ...)), and the
argument checks every loss shares (``loss_pointwise`` holds the element-wise losses).

Each loss is one Function with a closed-form backward, computed stably (log-sum-exp with the
max subtracted), so logits of 1e4 give finite losses and gradients. Spatial inputs are handled
inside the Function by moving the class axis last: (N, C, d1, ...) -> (N*d1*..., C) "rows".
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_int, check_number
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, is_real
from ._utils import check_float, check_tensor, int64_indices, type_name

REDUCTIONS = ("mean", "sum", "none")


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


def _rows(a, C):
    """(N, C, d1, ...) -> (N*d1*..., C), class axis last; (N, C) as it is; (C,) -> (1, C)."""
    if a.ndim == 2:
        return a
    if a.ndim == 1:
        return a.reshape(1, C)
    return backend.xp_of(a).moveaxis(a, 1, -1).reshape(-1, C)


def _unrows(g, shape):
    """The inverse of ``_rows``: (M, C) back to ``shape``."""
    if len(shape) == 2:
        return g
    if len(shape) == 1:
        return g.reshape(shape)
    g = g.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    xp = backend.xp_of(g)
    return xp.ascontiguousarray(xp.moveaxis(g, -1, 1))


def _row_factor(gy, reduction, M, divisor=None, v=None):
    """Upstream gradient per row, shaped (M, 1) or a scalar: gy for 'sum', gy / divisor for
    'mean'. With the rows' weights (divisor D = their sum, v: 0 for ignored rows) it is (M, 1)
    and, as in PyTorch, 0 on ignored rows, NaN on the others when D = 0 (the loss is NaN)."""
    if reduction == "none":
        return gy.reshape(M, 1)
    if reduction == "sum" or divisor is None:
        return _expand_reduced(gy, (M,), reduction)
    xp = backend.xp_of(divisor)
    g = gy / xp.where(divisor == 0, 1.0, divisor).astype(divisor.dtype)
    g = xp.where(divisor == 0, xp.nan, g).astype(g.dtype)
    return xp.where(v > 0, g, 0).astype(g.dtype)[:, None]


def _weighted_mean(loss, divisor):
    """sum(loss) / divisor; NaN (no warning) when the divisor is 0 (every row ignored, or
    weighted 0), as in PyTorch."""
    xp = backend.xp_of(loss)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = loss.sum() / divisor
    return xp.where(divisor == 0, xp.nan, mean).astype(mean.dtype)


def _log_softmax_rows(x2):
    xp = backend.xp_of(x2)
    shifted = x2 - x2.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


class CrossEntropy(Function):
    """Class-index targets: loss_i = -sum_c a_ic log softmax(x_i)_c over rows i, with
    a_ic = v_i ((1 - s) w_c [c = t_i] + s w_c / C): s the label smoothing, w the class weights
    (1 if none), v_i = 0 for rows whose target is ignore_index, else 1. 'mean' divides the sum
    by D = sum_i v_i w_{t_i} (PyTorch's weighted mean; the row count when unweighted).

    Gradient: gx_ic = g_i (softmax(x_i)_c sum_c' a_ic' - a_ic), g_i the upstream gradient of
    loss_i (gy / D for 'mean', gy for 'sum'); ignored rows get 0. When D = 0 (every row
    ignored or weighted 0) the 'mean' is NaN, and so is the gradient of each row not ignored.
    """

    def __init__(self, smoothing, reduction):
        self.smoothing, self.reduction = smoothing, reduction

    def forward(self, x, t, valid=None, w=None):
        xp = backend.xp_of(x)
        C = x.shape[min(1, x.ndim - 1)]
        self.shape, tshape = x.shape, t.shape
        logp = _log_softmax_rows(_rows(x, C))                   # (M, C)
        t = t.reshape(-1)
        picked = xp.take_along_axis(logp, t[:, None], axis=1)[:, 0]
        s = self.smoothing
        if valid is None and w is None:     # the plain case (fast path): every row counts once
            loss = -picked
            if s:
                loss = (1.0 - s) * loss - (s / C) * logp.sum(axis=1)
            self.save_for_backward(logp, t)
            return _reduce(loss.reshape(tshape), self.reduction)
        v = (xp.ones(t.shape, x.dtype) if valid is None
             else valid.reshape(-1).astype(x.dtype))
        wt = v if w is None else w[t] * v                       # (M,) weight of each row
        loss = (-(1.0 - s)) * wt * picked
        if s:
            loss -= (s / C) * v * (logp.sum(axis=1) if w is None else logp @ w)
        divisor = wt.sum()
        self.save_for_backward(logp, t, v, wt, w, divisor)
        if self.reduction == "mean":
            return _weighted_mean(loss, divisor)
        return _reduce(loss.reshape(tshape), self.reduction)

    def backward(self, gy):
        xp = backend.xp_of(gy)
        if len(self.saved) == 2:
            logp, t = self.saved
            N, C = logp.shape
            gx = xp.exp(logp)
            s = self.smoothing
            if s:
                gx -= s / C
            gx[xp.arange(N), t] -= 1.0 - s          # each row has one label: no repeats
            g = _expand_reduced(gy, (N,), self.reduction)
            g = g.reshape(N, 1) if self.reduction == "none" else g
            return _unrows(gx * g, self.shape), None
        logp, t, v, wt, w, divisor = self.saved
        M, C = logp.shape
        s = self.smoothing
        W = float(C) if w is None else w.sum()
        gx = xp.exp(logp) * ((1.0 - s) * wt + (s / C) * W * v)[:, None]
        if s:
            gx -= (s / C) * (v[:, None] if w is None else v[:, None] * w)
        gx[xp.arange(M), t] -= (1.0 - s) * wt
        gx *= _row_factor(gy, self.reduction, M, divisor, v)
        return _unrows(gx, self.shape), None, None, None


class SoftCrossEntropy(Function):
    """Class-probability targets p (input's shape): loss_i = -sum_c w_c q_ic log softmax(x_i)_c
    with q = (1 - s) p + s / C; 'mean' divides by the number of rows (not by the weights).

    Gradient: gx_ic = g_i (softmax(x_i)_c sum_c' w_c' q_ic' - w_c q_ic),
    gp_ic = -(1 - s) g_i w_c log softmax(x_i)_c.
    """

    def __init__(self, smoothing, reduction):
        self.smoothing, self.reduction = smoothing, reduction

    def forward(self, x, p, w=None):
        C = x.shape[min(1, x.ndim - 1)]
        self.shape = x.shape
        logp = _log_softmax_rows(_rows(x, C))                   # (M, C)
        q = _rows(p, C)
        s = self.smoothing
        if s:
            q = (1.0 - s) * q + s / C
        wq = q if w is None else q * w
        loss = -(wq * logp).sum(axis=1)
        self.save_for_backward(logp, wq, w)
        tshape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        return _reduce(loss.reshape(tshape), self.reduction)

    def backward(self, gy):
        logp, wq, w = self.saved
        xp = backend.xp_of(logp)
        M = logp.shape[0]
        g = _row_factor(gy, self.reduction, M)
        gx = gp = None
        if self.needs_input_grad[0]:
            gx = (xp.exp(logp) * wq.sum(axis=1, keepdims=True) - wq) * g
            gx = _unrows(gx, self.shape)
        if self.needs_input_grad[1]:
            gp = logp * ((-(1.0 - self.smoothing)) * g)
            gp = _unrows(gp if w is None else gp * w, self.shape)
        return gx, gp, None


class NLLLoss(Function):
    """loss_i = -v_i w_{t_i} x_i[t_i] (x holds log-probabilities; v_i = 0 where t_i is
    ignore_index; w the class weights, 1 if none); 'mean' divides by D = sum_i v_i w_{t_i}.

    Gradient: gx_i = -v_i w_{t_i} g_i at column t_i, 0 elsewhere (g_i = gy / D for 'mean';
    when D = 0, NaN at column t_i of each row not ignored, as in PyTorch)."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t, valid=None, w=None):
        xp = backend.xp_of(x)
        C = x.shape[min(1, x.ndim - 1)]
        self.shape, tshape = x.shape, t.shape
        t = t.reshape(-1)
        picked = xp.take_along_axis(_rows(x, C), t[:, None], axis=1)[:, 0]
        if valid is None and w is None:
            self.save_for_backward(t, None, None, None)
            return _reduce(-picked.reshape(tshape), self.reduction)
        v = (xp.ones(t.shape, x.dtype) if valid is None
             else valid.reshape(-1).astype(x.dtype))
        wt = v if w is None else w[t] * v
        divisor = wt.sum()
        self.save_for_backward(t, v, wt, divisor)
        loss = -(wt * picked)
        if self.reduction == "mean":
            return _weighted_mean(loss, divisor)
        return _reduce(loss.reshape(tshape), self.reduction)

    def backward(self, gy):
        t, v, wt, divisor = self.saved
        xp = backend.xp_of(gy)
        M = t.shape[0]
        C = self.shape[min(1, len(self.shape) - 1)]
        gx = xp.zeros((M, C), dtype=gy.dtype)
        g = _row_factor(gy, self.reduction, M, divisor, v).reshape(-1)
        gx[xp.arange(M), t] = -g if wt is None else -(g * wt)
        gx = _unrows(gx, self.shape)
        return (gx, None) if wt is None else (gx, None, None, None)


# ---------------------------------------------------------------------------------------------
# argument checks (shared with loss_pointwise and the nn loss modules)

def check_reduction(op, reduction, allowed=REDUCTIONS):
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"{op}: 'reduction' must be one of {allowed}, got {reduction!r}")


def check_legacy(op, size_average, reduce):
    """PyTorch's deprecated size_average/reduce: accepted only as None (their default)."""
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None:
            raise ValueError(f"{op}: '{name}' is deprecated in PyTorch and not supported by "
                             f"minidl, got {value!r}; use reduction='mean' | 'sum' | 'none' "
                             "(pass reduction by keyword)")


def _check_input(op, input, target):
    check_float(op, "input", input)
    check_tensor(op, "target", target)
    if input.ndim == 0:
        raise ValueError(f"{op}: 'input' must be (C,), (N, C) or (N, C, d1, ...), got a 0-d "
                         "tensor")
    if input.shape[min(1, input.ndim - 1)] == 0:
        raise ValueError(f"{op}: 'input' {input.shape} has no classes (C = 0 along dim "
                         f"{min(1, input.ndim - 1)}); a class loss needs at least one")
    if target.device != input.device:
        raise RuntimeError(f"{op}: 'target' is on {target.device}, 'input' on {input.device}")
    return input.shape[min(1, input.ndim - 1)]


def _check_class_weight(op, weight, input, C):
    """The class weights as a raw array of input's dtype, or None. They are constants (PyTorch
    does not differentiate them either)."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        hint = (f" (label_smoothing is the keyword argument label_smoothing={weight!r})"
                if is_real(weight) else "")
        raise TypeError(f"{op}: 'weight' must be a float Tensor of shape ({C},) or None, got "
                        f"{type_name(weight)}{hint}")
    check_float(op, "weight", weight)
    if weight.shape != (C,):
        raise ValueError(f"{op}: 'weight' must have shape ({C},), one weight per class of "
                         f"input {input.shape}, got {weight.shape}")
    return constant_weight(op, "weight", weight, input,
                           "class weights are constants (no gradient, as in PyTorch)")


def constant_weight(op, arg, weight, input, why):
    """A loss's weight tensor (checked for shape by the caller) as a raw array of input's
    dtype: on input's device, and not requiring grad (``why`` says why it is a constant)."""
    if weight.device != input.device:
        raise RuntimeError(f"{op}: '{arg}' is on {weight.device}, 'input' on {input.device}")
    if weight.requires_grad and is_grad_enabled():
        raise ValueError(f"{op}: '{arg}' requires grad, but {why}; pass {arg}.detach()")
    return weight.data.astype(input.dtype, copy=False)


def _check_class_target(op, input, target, ignore_index, C):
    """Integer labels of shape (N, d1, ...) in [0, C) or equal to ignore_index. Returns
    (labels safe to index with, valid mask or None when every row counts)."""
    expected = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'target' must hold integer class labels of shape {expected} "
                        f"(convert with .long()) or, for cross_entropy, class probabilities "
                        f"of input's shape {input.shape}; got dtype {target.dtype}, shape "
                        f"{target.shape}")
    if target.shape != expected:
        raise ValueError(f"{op}: 'target' must have shape {expected} to match input "
                         f"{input.shape}, got {target.shape}")
    t = int64_indices(target.data)
    if t.size == 0:
        return t, None
    xp = backend.xp_of(t)
    ignore_inside = 0 <= ignore_index < C
    bad = (t < 0) | (t >= C)

    def error():
        labels = t[t != ignore_index]
        lo = int(labels.min()) if labels.size else 0
        hi = int(labels.max()) if labels.size else 0
        if 0 <= lo and hi < C:      # a CUDA graph replayed other labels since
            return ValueError(f"{op}: 'target' held a label outside [0, {C}) for {C} classes "
                              "in a step since the last synchronization")
        bad_label = lo if lo < 0 else hi
        return ValueError(f"{op}: 'target' holds label {bad_label}, outside [0, {C}) for "
                          f"{C} classes")
    flag = bad.any() if ignore_inside else (bad & (t != ignore_index)).any()
    # on a GPU the flag is read back at the next sync, not here (no wait per step); until
    # then out-of-range labels point at class 0 and their rows are masked out
    deferred = backend.check_later(flag, error)
    if ignore_inside:
        return (xp.where(bad, 0, t) if deferred else t), t != ignore_index
    if deferred or bad.any():       # on the host: only ignored labels are out of range
        return xp.where(bad, 0, t), ~bad
    return t, None


def _class_loss(op, input, target, weight, ignore_index, reduction, smoothing):
    C = _check_input(op, input, target)
    check_reduction(op, reduction)
    ignore_index = check_int(op, "ignore_index", ignore_index)
    w = _check_class_weight(op, weight, input, C)
    if op == "cross_entropy" and target.dtype.kind == "f":
        if target.shape != input.shape:
            raise ValueError(f"{op}: a float 'target' holds class probabilities and must have "
                             f"input's shape {input.shape}, got {target.shape} (class "
                             "indices need an integer dtype: .long())")
        if target.dtype != input.dtype:
            raise TypeError(f"{op}: probability 'target' has dtype {target.dtype}, 'input' "
                            f"{input.dtype}; they must match")
        if ignore_index >= 0:
            raise ValueError(f"{op}: 'ignore_index' ({ignore_index}) is not supported with "
                             "class-probability targets (as in PyTorch); give a zero "
                             "weight, or a negative ignore_index")
        return SoftCrossEntropy(smoothing, reduction)(input, target, w)
    t, valid = _check_class_target(op, input, target, ignore_index, C)
    fn = CrossEntropy(smoothing, reduction) if op == "cross_entropy" else NLLLoss(reduction)
    if valid is None and w is None:
        return fn(input, Tensor(t) if t is not target.data else target)
    return fn(input, Tensor(t), valid, w)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits ``input`` against ``target``, as PyTorch defines it.

    Args:
        input: logits (N, C), (N, C, d1, d2, ...) or unbatched (C,).
        target: integer class labels (N,) / (N, d1, ...) / () in [0, C) or equal to
            ``ignore_index``; or float class probabilities of input's shape (mixup, cutmix).
        weight: optional (C,) class weights w (constants).
        ignore_index: label whose rows give no loss and no gradient (class-index targets only).
        reduction: 'mean' | 'sum' | 'none' (per row, of target's shape without C).
        label_smoothing: s in [0, 1]; the target becomes q = (1 - s) target + s / C.
        size_average, reduce: PyTorch's deprecated arguments; only None is accepted.

    Math, per row i with log-probabilities l_i = log softmax(x_i):
        class index t_i:  loss_i = -v_i ((1 - s) w_{t_i} l_{i,t_i} + (s / C) sum_c w_c l_ic),
            v_i = 0 if t_i == ignore_index else 1; 'mean' = sum_i loss_i / sum_i v_i w_{t_i}
            (NaN when every row is ignored or weighted 0, as in PyTorch).
        probabilities p_i:  loss_i = -sum_c w_c q_ic l_ic; 'mean' = sum_i loss_i / (#rows).

    Gradient: see ``CrossEntropy`` and ``SoftCrossEntropy`` (both softmax(x) times the row's
    total target weight minus the weighted target); probability targets get one too.
    """
    check_legacy("cross_entropy", size_average, reduce)
    smoothing = check_number("cross_entropy", "label_smoothing", label_smoothing, 0, 1)
    return _class_loss("cross_entropy", input, target, weight, ignore_index, reduction,
                       smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (N, C) / (N, C, d1, ...) / (C,)
    at integer labels ``target`` (N,) / (N, d1, ...) / ().

    loss_i = -v_i w_{t_i} input_i[t_i] with v_i = 0 where t_i == ignore_index; 'mean' divides
    the sum by sum_i v_i w_{t_i} (NaN when every row is ignored or weighted 0, as in PyTorch).
    Gradient: -v_i w_{t_i} g_i at column t_i, 0 elsewhere.
    """
    check_legacy("nll_loss", size_average, reduce)
    return _class_loss("nll_loss", input, target, weight, ignore_index, reduction, 0.0)
