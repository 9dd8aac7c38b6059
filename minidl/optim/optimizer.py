"""Optimizer: the base class of SGD, RMSprop, Adam and AdamW.

An optimizer holds ``param_groups``, a list of dicts as in PyTorch: each has ``'params'`` (a list
of Parameters) and the hyperparameters for them (``'lr'``, ``'momentum'``, ...), so groups can
use different settings and schedulers can change ``group['lr']`` between steps. Per-parameter
buffers (momentum, moment estimates) live in ``state[p]``, created lazily on the first step.

``state_dict()`` names parameters by position, counting through the groups in order (group 0's
parameters are 0..n0-1, group 1's follow, ...), which is PyTorch's layout:
``{'state': {index: {name: array or number}}, 'param_groups': [{..., 'params': [indices]}]}``.
It holds only arrays and Python numbers, so it can be written to ``.npz`` and loaded into a fresh
optimizer built over the same parameters in the same order.

Subclasses define ``defaults``, ``_check_group`` (validate and normalize one group's
hyperparameters) and ``_update(group, p, g, state)``: the update of one parameter array ``p``
in place from its gradient ``g`` and its state dict, elementwise, written once against ``xp``.
The per-parameter path calls it once per parameter; the ``fused`` path (``optim/flat.py``)
calls it once per group with all of the group's parameters, gradients and state in flat
buffers, so one set of array operations (GPU kernel launches) updates them all.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_bool
from ..autograd import enable_grad, no_grad
from ..profiler import record_function
from ..tensor import Tensor
from .flat import FlatGroup


def state_buffer(state, name, like):
    """``state[name]``, created as zeros shaped like ``like`` on first use."""
    buf = state.get(name)
    if buf is None:
        buf = state[name] = backend.xp_of(like).zeros_like(like)
    return buf


def ema_(avg, decay, value):
    """In place: ``avg = decay * avg + (1 - decay) * value`` (a running average)."""
    avg *= decay
    avg += (1.0 - decay) * value
    return avg


def _index(name, what, value):
    """A non-negative Python int from an int, a NumPy integer or an integral 0-d array, or a
    ValueError naming ``what``."""
    if isinstance(value, Tensor) and value.data.size == 1:    # PyTorch keeps step as a tensor
        value = backend.as_numpy(value.data).reshape(())
    v = _host_scalar(value)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{name}: {what} must be a non-negative integer, got {value!r}")
    return v


def _host_scalar(value):
    """A Python number from a NumPy scalar or 0-d host array (load time only); anything else
    is returned unchanged."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Parameters (leaf Tensors), or of dicts each with ``'params'`` and
            optional per-group hyperparameters that override ``defaults``.
        defaults: the hyperparameters a group gets when it does not set them.
        fused: update all parameters of a param group at once, through flat buffers the
            parameters become views of (see ``minidl/optim/flat.py``): the same results, bit
            for bit, with a few array operations per group instead of a few per parameter.
            ``None`` (default): on when the parameters are on a GPU, where each operation is
            a kernel launch; ``True``: also on the CPU; ``False``: never.

    Attributes:
        param_groups: list of dicts, one per group: ``'params'`` and hyperparameters.
        state: ``{parameter: {buffer name: array or number}}``, filled on the first ``step``.
        defaults: the constructor's hyperparameters.
    """

    #: state entries that are Python numbers, not arrays shaped like the parameter
    _scalar_state = ("step",)
    #: whether ``step`` may be captured in a CUDA graph (``minidl.cuda_graph``): its update
    #: reads every hyperparameter through ``_hyper`` and keeps no host-side per-step state
    _capturable = False
    #: names this optimizer may keep in ``state[p]`` (checked by ``load_state_dict``)
    _state_names = ()
    #: names every non-empty ``state[p]`` must hold (the rest are created when first needed)
    _required_state = ()

    def __init__(self, params, defaults, fused=None):
        name = type(self).__name__
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if fused is not None:
            fused = check_bool(name, "fused", fused)
        self.fused = fused
        self._flat = {}          # group position -> FlatGroup, built on the first fused step
        if isinstance(params, (Tensor, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{name}: params must be an iterable of Parameters or of dicts "
                            f"(e.g. model.parameters()), got {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: params must be an ordered iterable (list, generator), "
                            "got a set, whose order would change between runs and break "
                            "state_dict()")
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list; pass model.parameters() "
                             "of a model that has parameters (a generator can be used once)")
        if all(isinstance(p, dict) for p in params):
            for group in params:
                self.add_param_group(group)
        elif any(isinstance(p, dict) for p in params):
            raise TypeError(f"{name}: params must be all Parameters or all dicts (param "
                            "groups), got a mix of both")
        else:
            self._add_group({"params": params}, "")

    # -- groups ----------------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group: a dict with ``'params'`` and optional hyperparameters (defaults fill
        the rest). Useful to start training layers that were frozen."""
        where = f" in param group {len(self.param_groups)}"
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}: a param group must be a dict with a "
                            f"'params' key, got {type(param_group).__name__}")
        self._add_group(param_group, where)

    def _add_group(self, param_group, where):
        name = type(self).__name__
        if "params" not in param_group:
            raise ValueError(f"{name}: param group{where} has no 'params' key "
                             f"(keys: {sorted(param_group)})")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{name}: 'params'{where} must be a Parameter or an ordered "
                            f"iterable of Parameters, got {type(params).__name__}")
        params = list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        mine = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: params{where} must be Parameters (leaf Tensors), "
                                f"entry {i} is {type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(f"{name}: entry {i} of params{where} is not a leaf tensor "
                                 "(it is the result of an op); optimize the leaves")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: entry {i} of params{where} has dtype {p.dtype}; "
                                "only floating-point parameters can be optimized")
            if id(p) in mine:
                raise ValueError(f"{name}: entry {i} of params{where} appears twice in the "
                                 "group; it would be updated twice per step")
            if id(p) in seen:
                raise ValueError(f"{name}: entry {i} of params{where} already belongs to "
                                 "another param group; a parameter can be in one group only")
            mine.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group, where)
        self.param_groups.append(group)

    def _check_group(self, group, where):
        """Validate and normalize the hyperparameters of ``group`` in place (subclasses)."""

    # -- stepping --------------------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Drop the gradients (``set_to_none=True``, the default and cheapest) or replace them
        with zeros. Gradient arrays are never written in place (they may be shared)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = Tensor(backend.xp_of(p.grad.data).zeros_like(p.grad.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss; it is
                called with gradient recording on, before the update.

        Returns:
            The closure's loss, or None.
        """
        with record_function(f"{type(self).__name__}.step"):       # (for minidl.profiler)
            return self._step(closure)

    def _step(self, closure):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        graph = backend.active_graph()
        if graph is not None:
            if not self._capturable:
                raise RuntimeError(
                    f"{type(self).__name__}.step cannot run inside a CUDA-graph step "
                    "(minidl.cuda_graph): its update depends on host-side per-step state "
                    "(the step count) that a replayed graph would not advance; use SGD in a "
                    "graphed step, or run this optimizer eagerly")
            graph.watch(self)
        with no_grad():
            for i, group in enumerate(self.param_groups):
                if not (self._wants_flat(group) and self._step_group_flat(i, group)):
                    for p, g in self._grads(group):
                        self._update(group, p.data, g, self.state.setdefault(p, {}))
                for p in group["params"]:         # changed in place: a graph that saved them
                    if p.grad is not None:        # can no longer run backward (autograd)
                        p._version += 1
        return loss

    def _hyper(self, group, name, like, value=None):
        """Hyperparameter ``name`` of ``group`` for the update of array ``like``: the Python
        number (``value()`` when given, a derived quantity, else ``group[name]``), or, in a
        CUDA-graph step, a 0-d device array holding it that the graph refreshes from the group
        before every replay (a Python number would be frozen into the recorded kernels, and a
        scheduler's new learning rate ignored)."""
        get = value if value is not None else (lambda: float(group[name]))
        graph = backend.active_graph()
        if graph is None:
            return get()
        return graph.scalar((id(self), id(group), name, like.dtype), get, like)

    def _graph_structure(self):
        """What a captured step's recorded work depends on besides the hyperparameters' values:
        the groups' non-numeric settings, which numbers are zero (the update skips terms that
        are), and which arrays hold the parameters and their state (a graph updates the arrays
        it recorded: after ``p.data`` is rebound or ``load_state_dict`` replaced the buffers, it
        must be recorded anew). A CUDA-graph step re-captures when this changes."""
        structure = []
        for group in self.param_groups:
            params = group["params"]
            settings = tuple((k, v != 0 if isinstance(v, float) else v)
                             for k, v in sorted(group.items()) if k != "params")
            arrays = tuple(id(p.data) for p in params) + tuple(
                id(v) if hasattr(v, "shape") else v
                for p in params for v in self.state.get(p, {}).values())
            structure.append((settings, arrays))
        return tuple(structure)

    def _update(self, group, p, g, state):
        """Update the raw array ``p`` in place from its gradient ``g`` (never written) and its
        ``state`` dict (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    def _wants_flat(self, group):
        if self.fused is None:
            params = group["params"]
            return bool(params) and params[0].device.type != "cpu"
        return self.fused

    def _step_group_flat(self, i, group):
        """One fused update of ``group``; False when this step must go parameter by parameter
        (a parameter without a gradient, states out of step, mixed dtypes or devices)."""
        params = group["params"]
        if not params or any(p.grad is None for p in params):
            return False
        flat = self._flat.get(i)
        if flat is None or not flat.adopt_params(params):
            if not FlatGroup.eligible(params):
                return False
            flat = self._flat[i] = FlatGroup(params)
        states = [self.state.setdefault(p, {}) for p in params]
        flat_state = flat.gather_state(states, self._scalar_state)
        if flat_state is None:
            return False
        flat.xp.concatenate([g.reshape(-1) for _, g in self._grads(group)], out=flat.grad)
        self._update(group, flat.param, flat.grad, flat_state)
        flat.scatter_state(states, flat_state, self._scalar_state)
        return True

    def _grads(self, group):
        """Yield ``(p, g)`` for the parameters of ``group`` that have a gradient, ``g`` the raw
        gradient array (to read, never to write), checked against the parameter."""
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data
            if type(g) is not type(p.data) or g.shape != p.data.shape:
                raise RuntimeError(
                    f"{type(self).__name__}.step: a parameter of shape {p.data.shape} on "
                    f"{p.device} has a gradient of shape {g.shape} on "
                    f"{backend.device_of(g)}; they must match")
            if g.dtype != p.data.dtype:
                g = g.astype(p.data.dtype)
            yield p, g

    # -- serialization ---------------------------------------------------------------------------
    def _index_map(self):
        """{id(parameter): position}, counting through the groups in order."""
        ids, n = {}, 0
        for group in self.param_groups:
            for p in group["params"]:
                ids[id(p)] = n
                n += 1
        return ids

    def state_dict(self):
        """The optimizer's state in PyTorch's layout (arrays are shared, not copied):

        ``{'state': {index: {name: array or number}}, 'param_groups': [{hyperparameters...,
        'params': [indices]}]}``.
        """
        index = self._index_map()
        groups, n = [], 0
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = list(range(n, n + len(group["params"])))
            n += len(group["params"])
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[index[id(p)]] = dict(self.state[p])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and buffers saved by ``state_dict()``.

        Groups and parameters are matched by position; arrays are copied onto each parameter's
        device in its dtype. Everything is checked before anything changes, and a mismatch
        (number of groups, parameters per group, buffer names or shapes) raises ValueError.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups' "
                             f"(from state_dict()), got {_describe(state_dict)}")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)):
            raise ValueError(f"{name}: 'param_groups' must be a list of dicts, got "
                             f"{type(saved_groups).__name__}")
        if not isinstance(state_dict["state"], dict):
            raise ValueError(f"{name}: 'state' must be a dict {{parameter index: buffers}}, "
                             f"got {type(state_dict['state']).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter "
                             f"group(s), this optimizer has {len(self.param_groups)}")
        by_index = {}
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"{name}: param group {i} of the state dict is not a dict "
                                 "with a 'params' key")
            if not isinstance(saved["params"], (list, tuple, np.ndarray)):
                raise ValueError(f"{name}: 'params' of param group {i} of the state dict must "
                                 f"be a list of parameter indices, got "
                                 f"{type(saved['params']).__name__}")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: param group {i} of the state dict has "
                                 f"{len(saved['params'])} parameter(s), the optimizer's has "
                                 f"{len(group['params'])}")
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                raise ValueError(f"{name}: param group {i} of the state dict lacks "
                                 f"{missing}; was it saved from another kind of optimizer?")
            for idx, p in zip(saved["params"], group["params"]):
                idx = _index(name, f"a parameter index in param group {i}", idx)
                if idx in by_index:
                    raise ValueError(f"{name}: parameter index {idx} is listed twice in the "
                                     "state dict's param groups")
                by_index[idx] = p
            new = {k: _host_scalar(v) if k != "betas" else v for k, v in saved.items()}
            new["params"] = group["params"]
            lr = new.get("lr")
            below = isinstance(lr, float) and lr < 0   # a chained schedule can end below 0
            if below:                                  # (a rounding); PyTorch saves and
                new["lr"] = 0.0                        # loads it: checked as 0
            self._check_group(new, f" in param group {i} of the state dict")
            if below:
                new["lr"] = lr
            new_groups.append(new)
        new_state = {}
        for idx, buffers in state_dict["state"].items():
            idx = _index(name, "a key of 'state'", idx)
            if idx not in by_index:
                raise ValueError(f"{name}: the state dict has state for parameter {idx}, "
                                 f"which no param group lists")
            new_state[by_index[idx]] = self._load_buffers(name, idx, by_index[idx], buffers)
        for group, new in zip(self.param_groups, new_groups):
            group.clear()
            group.update(new)
        self.state = new_state

    def _load_buffers(self, name, idx, p, buffers):
        if not isinstance(buffers, dict):
            raise ValueError(f"{name}: the state of parameter {idx} must be a dict of buffers, "
                             f"got {type(buffers).__name__}")
        out = {}
        for key, value in buffers.items():
            if key not in self._state_names:
                raise ValueError(f"{name}: state of parameter {idx} has an entry {key!r}; "
                                 f"{type(self).__name__} keeps only {list(self._state_names)}")
            if key in self._scalar_state:
                out[key] = _index(name, f"state {key!r} of parameter {idx}", value)
                continue
            arr = value.data if isinstance(value, Tensor) else value
            if not hasattr(arr, "shape"):
                arr = np.asarray(arr)
            if tuple(arr.shape) != p.data.shape:
                raise ValueError(f"{name}: state {key!r} of parameter {idx} has shape "
                                 f"{tuple(arr.shape)}, the parameter has shape {p.data.shape}")
            if getattr(arr, "dtype", None) is None or arr.dtype.kind not in "biuf":
                raise ValueError(f"{name}: state {key!r} of parameter {idx} must be a real "
                                 f"numeric array, got dtype {getattr(arr, 'dtype', None)}")
            out[key] = backend.to_device(arr, p.device).astype(p.data.dtype, copy=True)
        lacking = [k for k in self._required_state if k not in out]
        if out and lacking:
            raise ValueError(f"{name}: state of parameter {idx} lacks {lacking} "
                             f"({type(self).__name__} keeps {list(self._required_state)} "
                             "for every parameter it has stepped)")
        return out

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def _describe(obj):
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))}"
    return type(obj).__name__
