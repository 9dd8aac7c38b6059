"""Weight averaging (SWA and EMA) with the names of PyTorch's ``torch.optim.swa_utils``.

``AveragedModel`` keeps a copy of a network whose weights follow a running average of the
network's weights during training: the equal-weight mean of the snapshots it is given
(Stochastic Weight Averaging, SWA, the default) or an exponential moving average (EMA, with
``get_ema_multi_avg_fn``). ``update_bn`` recomputes BatchNorm statistics for averaged weights
with one pass over the data, and ``SWALR`` anneals the learning rate to a constant SWA value.

An EMA of a model, updated after every optimizer step and evaluated in its place::

    from minidl.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        ema.update_parameters(model)
    ema.eval()
    with minidl.no_grad():
        logits = ema(x_test)

SWA over the last epochs, then BatchNorm statistics recomputed for the averaged weights::

    from minidl.optim.swa_utils import SWALR, AveragedModel, update_bn
    swa_model = AveragedModel(model)
    swa_sched = SWALR(opt, swa_lr=0.05, anneal_epochs=5)
    for epoch in range(epochs):
        train_one_epoch(model, loader, opt)
        if epoch >= swa_start:
            swa_model.update_parameters(model)
            swa_sched.step()
        else:
            sched.step()
    update_bn(loader, swa_model)
    swa_model.eval()

Updates are in place on the averaged arrays, written once against ``xp`` (NumPy or CuPy), with
no autograd graph and, on a GPU, no read of device values back to the host (see
``AveragedModel.update_parameters``).

Reference: Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
Generalization", UAI 2018.
"""
from __future__ import annotations

import copy
import numbers

import numpy as np

from .. import backend
from .._checks import check_bool, check_number
from ..autograd import no_grad
from ..nn.module import Module, module_device
from ..nn.normalization import _BatchNorm
from ..tensor import Tensor
from .lr_scheduler.swa import SWALR

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn",
           "get_swa_multi_avg_fn", "get_ema_avg_fn", "get_swa_avg_fn"]


# -- averaging functions ---------------------------------------------------------------------
def _array(x):
    return x.data if isinstance(x, Tensor) else x


def _pairs(op, averaged, current):
    """(averaged array, current array) pairs of two equally long lists of equal shapes."""
    if len(averaged) != len(current):
        raise ValueError(f"{op}: got {len(averaged)} averaged and {len(current)} current "
                         "tensors; they must pair up")
    pairs = [(_array(a), _array(c)) for a, c in zip(averaged, current)]
    for i, (a, c) in enumerate(pairs):
        if tuple(a.shape) != tuple(c.shape):
            raise ValueError(f"{op}: averaged tensor {i} has shape {tuple(a.shape)}, the "
                             f"current one {tuple(c.shape)}; they must match")
    return pairs


def _bump(tensors):
    for t in tensors:
        if isinstance(t, Tensor):
            t._version += 1


def _lerp_(avg, cur, w):
    """``avg += w * (cur - avg)`` in place (w a Python float), in the form that is exact at
    both ends: from ``cur`` when ``w >= 0.5`` (as ``torch.lerp``)."""
    if w < 0.5:
        avg += (cur - avg) * w
    else:
        backend.xp_of(avg).subtract(cur, (cur - avg) * (1.0 - w), out=avg)


def _ema_(avg, cur, decay):
    """``avg = decay * avg + (1 - decay) * cur`` in place; an integer ``avg`` (a counter such
    as ``num_batches_tracked``) gets the value computed in floating point, truncated."""
    if avg.dtype.kind == "f":
        _lerp_(avg, cur, 1.0 - decay)
    else:
        avg[...] = (avg * decay + cur * (1.0 - decay)).astype(avg.dtype)


def _divisor(n, like):
    """``n + 1`` for dividing ``like``: a Python float for a host count, else a 0-d array on the
    count's device, in ``like``'s floating dtype (float64 for integer arrays)."""
    if isinstance(n, numbers.Real):
        return float(n) + 1.0
    n = _array(n)
    return (n + 1).astype(like.dtype if like.dtype.kind == "f" else np.float64)


def _swa_(avg, cur, divisor):
    """``avg = avg + (cur - avg) / divisor`` in place (integer ``avg``: truncated)."""
    if avg.dtype.kind == "f":
        avg += (cur - avg) / divisor
    else:
        avg[...] = (avg + (cur - avg) / divisor).astype(avg.dtype)


def _check_decay(op, decay):
    return check_number(op, "decay", decay, 0, 1)


def get_ema_multi_avg_fn(decay=0.999):
    """The in-place exponential moving average over lists of tensors, for ``multi_avg_fn``.

    The returned ``fn(averaged, current, num_averaged)`` updates every Tensor (or array) of
    the list ``averaged`` in place from the same-shaped one of ``current``::

        averaged = decay * averaged + (1 - decay) * current

    (``num_averaged`` is not used). Integer tensors get the result truncated to an integer.

    Args:
        decay: the weight of the old average, in [0, 1]. Default: 0.999.
    """
    decay = _check_decay("get_ema_multi_avg_fn", decay)

    def ema_update(averaged, current, num_averaged=None):
        for a, c in _pairs("ema_update", averaged, current):
            _ema_(a, c, decay)
        _bump(averaged)

    return ema_update


def get_swa_multi_avg_fn():
    """The in-place equal-weight running mean over lists of tensors, for ``multi_avg_fn``.

    The returned ``fn(averaged, current, num_averaged)``, given the number of models already
    in the average ``n`` (an int or a 0-d integer Tensor, read on its device), updates every
    Tensor (or array) of ``averaged`` in place::

        averaged = averaged + (current - averaged) / (n + 1)

    Integer tensors get the result truncated to an integer.
    """
    def swa_update(averaged, current, num_averaged):
        divisors = {}
        for a, c in _pairs("swa_update", averaged, current):
            if a.dtype not in divisors:
                divisors[a.dtype] = _divisor(num_averaged, a)
            _swa_(a, c, divisors[a.dtype])
        _bump(averaged)

    return swa_update


def get_ema_avg_fn(decay=0.999):
    """The exponential moving average of one tensor, for ``avg_fn``.

    The returned ``fn(averaged, current, num_averaged)`` returns a new Tensor::

        decay * averaged + (1 - decay) * current

    (``num_averaged`` is not used).

    Args:
        decay: the weight of the old average, in [0, 1]. Default: 0.999.
    """
    decay = _check_decay("get_ema_avg_fn", decay)

    def ema_update(averaged, current, num_averaged=None):
        ((a, c),) = _pairs("ema_update", [averaged], [current])
        return Tensor(a * decay + c * (1.0 - decay))

    return ema_update


def get_swa_avg_fn():
    """The equal-weight running mean of one tensor, for ``avg_fn``.

    The returned ``fn(averaged, current, num_averaged)`` returns a new Tensor, with ``n`` the
    number of models already in the average (an int or a 0-d integer Tensor)::

        averaged + (current - averaged) / (n + 1)
    """
    def swa_update(averaged, current, num_averaged):
        ((a, c),) = _pairs("swa_update", [averaged], [current])
        return Tensor(a + (c - a) / _divisor(num_averaged, a))

    return swa_update


# -- the averaged model ----------------------------------------------------------------------
class AveragedModel(Module):
    """A copy of ``model`` whose parameters hold a running average of ``model``'s, updated by
    ``update_parameters(model)``: SWA (the equal-weight mean) by default, or any average that
    ``avg_fn`` / ``multi_avg_fn`` computes (e.g. ``get_ema_multi_avg_fn(0.999)``).

    With ``n`` the number of models averaged so far (the buffer ``n_averaged``), the first
    update copies the model's values; each later one, for every averaged tensor ``A`` and the
    model's ``W``::

        default:         A = A + (W - A) / (n + 1)       (A is the mean of all n + 1 snapshots)
        avg_fn:          A = avg_fn(A, W, n)              (returns the new value, per tensor)
        multi_avg_fn:    multi_avg_fn([A...], [W...], n)  (updates in place, per device and dtype)

    The functions get Tensors sharing the arrays, and ``n`` as a 0-d int64 Tensor on their
    device; they run under ``minidl.no_grad()``.

    Buffers: with ``use_buffers=False`` only the parameters are averaged, and the buffers
    (BatchNorm's running statistics) are copied from ``model`` at every update, as PyTorch
    does; call ``update_bn`` to get statistics that fit the averaged weights. With
    ``use_buffers=True`` the buffers are averaged like the parameters; integer buffers
    (``num_batches_tracked``) are averaged in floating point and truncated, as in PyTorch.

    ``state_dict()`` has PyTorch's keys: ``n_averaged`` and ``module.<name>`` (``avg_fn`` and
    ``multi_avg_fn`` are not saved).

    Args:
        model: the Module to average (deep-copied; its gradients are not kept).
        device: where to keep the copy (None: where ``model`` is).
        avg_fn: ``avg_fn(averaged, current, n) -> Tensor`` for one tensor, or None.
        multi_avg_fn: ``multi_avg_fn(averaged_list, current_list, n)`` updating in place, or
            None. At most one of ``avg_fn`` and ``multi_avg_fn`` may be given.
        use_buffers: average the buffers too (True) or copy them (False, default).

    Reference: Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
    Generalization", UAI 2018.
    """

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        op = "AveragedModel"
        if not isinstance(model, Module):
            raise TypeError(f"{op}: 'model' must be a minidl.nn.Module, got "
                            f"{type(model).__name__}")
        for name, fn in (("avg_fn", avg_fn), ("multi_avg_fn", multi_avg_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{op}: '{name}' must be callable or None, got "
                                f"{type(fn).__name__}")
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError(f"{op}: give at most one of 'avg_fn' and 'multi_avg_fn', got both")
        self.use_buffers = check_bool(op, "use_buffers", use_buffers)
        dev = backend.get_device(device) if device is not None else None
        module = copy.deepcopy(model)
        for p in module.parameters():
            p.grad = None
        if dev is not None:
            module.to(dev)
        self.module = module
        if dev is None:
            dev = module_device(module)
        self.register_buffer("n_averaged", Tensor(backend.to_device(np.zeros((), np.int64),
                                                                    dev)))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self._n_host = 0        # n_averaged as last known on the host (a GPU count is not read)
        self._n_key = self._count_key()

    def forward(self, *args, **kwargs):
        """Run the averaged copy: ``self.module(*args, **kwargs)``."""
        return self.module(*args, **kwargs)

    def _count_key(self):
        """What the host copy of ``n_averaged`` is valid for: its array and version."""
        n = self.n_averaged
        return id(n), id(n.data), n._version

    def _count(self, op):
        """``n_averaged`` as a Python int. On a GPU the host copy kept by the updates is used,
        and the device is read (once) only after something else changed the count."""
        n = self.n_averaged.data
        if backend.xp_of(n) is np:
            return int(n)
        if self._n_host is None or self._n_key != self._count_key():
            backend.refuse_in_capture(f"{op} (reading n_averaged after it was changed "
                                      "outside update_parameters)")
            self._n_host, self._n_key = int(self.n_averaged.item()), self._count_key()
        return self._n_host

    def update_parameters(self, model):
        """Fold ``model``'s current parameters (and buffers) into the average, in place.

        ``model`` must have the averaged model's structure: as many parameters and buffers,
        of the same shapes, in the same order (ValueError otherwise, before anything changes).

        On a GPU no value is read back to the host: whether this is the first update comes
        from a count kept on the host alongside ``n_averaged`` (re-read once if ``n_averaged``
        was changed otherwise), and the SWA divisor ``n + 1`` is computed on the device. So
        after one eager update, calls may be captured in a CUDA graph
        (``minidl.cuda_graph``): the replays keep counting on the device.
        """
        op = "AveragedModel.update_parameters"
        if not isinstance(model, Module):
            raise TypeError(f"{op}: 'model' must be a minidl.nn.Module, got "
                            f"{type(model).__name__}")
        params = _matched(op, "parameter", self.module.named_parameters(),
                          model.named_parameters())
        buffers = _matched(op, "buffer", self.module.named_buffers(), model.named_buffers())
        averaged = params + buffers if self.use_buffers else params
        capturing = backend.capturing()
        with no_grad():
            n = self._count(op)
            if capturing and n == 0:
                raise RuntimeError(f"{op}: the first update copies the model and cannot be "
                                   "captured in a CUDA graph; run one update eagerly first")
            if n == 0:
                for a, w in averaged:
                    a.data[...] = w
            elif self.multi_avg_fn is not None:
                self._apply_multi(averaged)
            elif self.avg_fn is not None:
                self._apply_each(op, averaged)
            else:
                on_host = backend.xp_of(self.n_averaged.data) is np
                divisors = {}
                for a, w in averaged:
                    key = (a.device, a.dtype)
                    if key not in divisors:         # on a GPU, n + 1 is computed there
                        divisors[key] = _divisor(n if on_host else self._n_on(a.device), a.data)
                    _swa_(a.data, w, divisors[key])
            if not self.use_buffers:
                for a, w in buffers:
                    a.data[...] = w
            self.n_averaged.data += 1
        for a, _ in params + buffers:
            a._version += 1
        self._n_host = None if capturing else n + 1    # replays count on the device only
        self._n_key = self._count_key()

    def _n_on(self, device):
        n = self.n_averaged.data
        return Tensor(n if backend.device_of(n) == device else backend.to_device(n, device))

    def _apply_multi(self, averaged):
        groups = {}
        for a, w in averaged:
            groups.setdefault((a.device, a.dtype), []).append((a, w))
        for (device, _), pairs in groups.items():
            self.multi_avg_fn([a.detach() for a, _ in pairs], [Tensor(w) for _, w in pairs],
                              self._n_on(device))

    def _apply_each(self, op, averaged):
        for a, w in averaged:
            out = _array(self.avg_fn(a.detach(), Tensor(w), self._n_on(a.device)))
            if not hasattr(out, "shape") or tuple(out.shape) != a.shape:
                got = (f"shape {tuple(out.shape)}" if hasattr(out, "shape")
                       else type(out).__name__)
                raise ValueError(f"{op}: avg_fn must return a Tensor shaped like the averaged "
                                 f"tensor {a.shape}, got {got}")
            if backend.xp_of(out) is not backend.xp_of(a.data):
                out = backend.to_device(out, a.device)
            a.data[...] = out.astype(a.dtype, copy=False)

    def load_state_dict(self, state_dict, strict=True):
        """``Module.load_state_dict``; a PyTorch AveragedModel's state dict (as arrays) of an
        equivalent model loads too. The count ``n_averaged`` comes with it."""
        result = super().load_state_dict(state_dict, strict)
        self._n_host = None           # loaded in place: read again at the next update
        return result


def _matched(op, kind, averaged, current):
    """[(averaged Tensor, current array on its device)], after checking that the two named
    lists pair up by count and shape."""
    averaged, current = list(averaged), list(current)
    if len(averaged) != len(current):
        raise ValueError(f"{op}: 'model' has {len(current)} {kind}s, the averaged model has "
                         f"{len(averaged)}; pass a model of the same structure")
    out = []
    for (name_a, a), (name_w, w) in zip(averaged, current):
        if a.shape != w.shape:
            names = repr(name_w) if name_a == name_w else f"{name_w!r} (averaged: {name_a!r})"
            raise ValueError(f"{op}: 'model' {kind} {names} has shape {w.shape}, the averaged "
                             f"model expects {a.shape}")
        data = w.data
        if backend.device_of(data) != a.device:
            data = backend.to_device(data, a.device)
        out.append((a, data))
    return out


# -- BatchNorm statistics --------------------------------------------------------------------
def update_bn(loader, model, device=None):
    """Recompute the running statistics of every BatchNorm layer of ``model`` with one pass
    over ``loader``: the running mean and (unbiased) variance become the average of the
    batches' statistics (momentum None, a cumulative average), as fits averaged weights.

    The statistics are reset first; the pass runs in training mode without recording
    gradients; afterwards every layer's momentum and every module's training flag are as
    before. A model without BatchNorm layers is left as it is.

    Args:
        loader: an iterable of batches: each a Tensor, or a tuple or list whose first element
            is the input Tensor (e.g. ``(x, y)``).
        model: the Module (an ``AveragedModel`` too).
        device: if given, each input is moved there before the forward pass.
    """
    op = "update_bn"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: 'model' must be a minidl.nn.Module, got {type(model).__name__}")
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"{op}: 'loader' must be an iterable of batches, got "
                        f"{type(loader).__name__}")
    dev = backend.get_device(device) if device is not None else None
    momenta = {m: m.momentum for m in model.modules() if isinstance(m, _BatchNorm)}
    if not momenta:
        return
    modes = [(m, m.training) for m in model.modules()]
    try:
        for m in momenta:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with no_grad():
            for i, batch in enumerate(loader):
                seq = isinstance(batch, (list, tuple))
                x = batch[0] if seq and batch else batch
                if not isinstance(x, Tensor):
                    got = (f"a {type(batch).__name__} starting with {type(x).__name__}"
                           if seq and batch else type(batch).__name__)
                    raise TypeError(f"{op}: batch {i} of 'loader' must be a Tensor or a "
                                    f"tuple/list starting with one, got {got}")
                model(x.to(dev) if dev is not None else x)
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
