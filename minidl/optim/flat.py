"""Flat parameter groups: the optimizers' ``fused`` path.

A per-parameter optimizer step runs its handful of array operations once per parameter tensor.
On a GPU every array operation is a kernel launch that costs about 8 us of host time whatever
its size, and a ResNet-20 has 65 parameter tensors: SGD with Nesterov momentum and weight decay
is about 8 x 65 = 520 launches per step that way. A flat group makes it about 10: all of a
param group's parameters live in one contiguous buffer, and the optimizer's update runs once
over that buffer.

How it works (``FlatGroup``):

- The first fused step copies the group's parameters into one 1-D buffer and rebinds each
  ``p.data`` to its slice of it (a view reshaped to the parameter's shape), so updating the
  buffer in place updates every parameter, and the model keeps reading its own tensors.
- Optimizer state (momentum, moment estimates) is flat the same way; ``state[p]`` holds views
  of the flat buffers, so ``state_dict()`` and checkpoints look exactly as without ``fused``.
- Each step gathers the gradients into a flat gradient buffer (one concatenate) and calls the
  optimizer's ``_update`` once with the flat arrays: the same function the per-parameter path
  calls once per parameter. The math is elementwise, so both paths give bitwise equal results.

Anything that rebinds ``p.data`` (``Module.to``, a model's ``load_state_dict``, user code) or
the optimizer's state (``Optimizer.load_state_dict``) is noticed at the next step by identity
checks (microseconds) and copied into the buffers. A step where some parameter has no gradient,
or where the parameters' states are not in step (one has a momentum buffer and another has
not, or their step counts differ), runs the per-parameter path instead, which is always exact;
so does a group whose parameters differ in dtype or device.
"""
from __future__ import annotations

from .. import backend


class FlatGroup:
    """One param group's parameters, gradients and state in flat buffers (see module doc)."""

    def __init__(self, params):
        data = [p.data for p in params]
        xp = backend.xp_of(data[0])
        self.xp = xp
        self.ids = tuple(id(p) for p in params)
        self.dtype, self.device = data[0].dtype, backend.device_of(data[0])
        self.shapes = [a.shape for a in data]
        self.bounds = []
        n = 0
        for a in data:
            self.bounds.append((n, n + a.size))
            n += a.size
        self.size = n
        self.param = xp.empty(n, self.dtype)
        self.grad = xp.empty(n, self.dtype)
        self.views = self.split(self.param)
        for p, view in zip(params, self.views):
            view[...] = p.data
            p.data = view
        self.state = {}            # name -> flat buffer
        self._state_views = {}     # name -> views of it, one per parameter

    @staticmethod
    def eligible(params):
        """Whether ``params`` can share one buffer: the same dtype on the same device."""
        first = params[0].data
        dtype, device = first.dtype, backend.device_of(first)
        return all(p.data.dtype == dtype and backend.device_of(p.data) == device
                   for p in params)

    def split(self, flat):
        """Views of ``flat`` shaped like the parameters, in order."""
        return [flat[lo:hi].reshape(shape) for (lo, hi), shape in zip(self.bounds, self.shapes)]

    def adopt_params(self, params):
        """Make every ``p.data`` a view of the buffer again, copying in whatever was rebound.

        Returns False when the group no longer fits (other parameters, or a parameter whose
        shape, dtype or device changed): the caller builds a new FlatGroup then.
        """
        if tuple(id(p) for p in params) != self.ids:
            return False
        for p, view in zip(params, self.views):
            a = p.data
            if a is view:
                continue
            if (a.shape != view.shape or a.dtype != self.dtype
                    or backend.device_of(a) != self.device):
                return False
            view[...] = a
            p.data = view
        return True

    def gather_state(self, states, scalar_names):
        """The flat state to hand to ``_update``, built from the per-parameter ``states``
        (copying in arrays that are not views of the flat buffers yet); None when the
        parameters' states are not in step (different entries, or different scalars)."""
        keys = set(states[0])
        if any(set(s) != keys for s in states[1:]):
            return None
        flat_state = {}
        for name in keys:
            values = [s[name] for s in states]
            if name in scalar_names:
                if any(v != values[0] for v in values[1:]):
                    return None
                flat_state[name] = values[0]
                continue
            if name not in self.state:
                self._bind(name, self.xp.empty(self.size, self.dtype), states, assign=False)
            for s, value, view in zip(states, values, self._state_views[name]):
                if value is not view:
                    view[...] = value
                    s[name] = view
            flat_state[name] = self.state[name]
        return flat_state

    def scatter_state(self, states, flat_state, scalar_names):
        """After ``_update``: give each parameter's state the new scalars and views of any flat
        buffer ``_update`` created or replaced."""
        for name, value in flat_state.items():
            if name in scalar_names:
                for s in states:
                    s[name] = value
            elif self.state.get(name) is not value:
                self._bind(name, value, states, assign=True)

    def _bind(self, name, flat, states, assign):
        self.state[name] = flat
        self._state_views[name] = views = self.split(flat)
        if assign:
            for s, view in zip(states, views):
                s[name] = view
