"""Hooks on tensors: ``Tensor.register_hook`` and the handle every ``register_*hook`` returns.

A tensor hook ``hook(grad)`` sees the gradient of a tensor once backward has summed it over
every path, and may return a replacement. Where the hooks live follows PyTorch:

- a non-leaf tensor's hooks sit on the node that made it (``grad_fn._hooks``, keyed by the
  tensor's output index), so they run even after the tensor itself is gone, when the engine
  (``autograd.run_backward``) takes that node's complete output gradients off its queue,
  before ``retain_grad`` keeps them and before the node's backward;
- a leaf's hooks sit on the leaf (``tensor._hooks``) and run once its gradient of this
  backward is complete, before it is added into ``.grad``. minidl completes the leaves'
  gradients after the whole graph is walked, so parameter hooks run after every module's
  backward hook; PyTorch runs each as soon as that leaf's gradient is ready. The values are
  the same, only the order of the calls differs.

Hooks get and return Tensors wrapping the engine's arrays: nothing is copied or read back
from the device (no host synchronization). Only a gradient's shape, dtype and device are
checked, host metadata.
"""
from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict

from .tensor import Tensor


class RemovableHandle:
    """What ``register_hook`` and the ``Module.register_*_hook`` methods return.

    ``handle.remove()`` unregisters the hook (a second call does nothing); ``with handle:``
    removes it when the block ends. ``handle.id`` is the hook's key in its ``OrderedDict``.
    The handle holds the dictionaries weakly: it keeps neither a module nor a graph alive.

    Args:
        hooks_dict: the ``OrderedDict`` the hook is (about to be) stored in under ``self.id``.
        extra_dicts: further dictionaries whose entry under ``self.id`` (a hook's flags, say)
            goes with the hook.
    """

    _ids = itertools.count()

    def __init__(self, hooks_dict, extra_dicts=()):
        self.id = next(RemovableHandle._ids)
        self._refs = tuple(weakref.ref(d) for d in (hooks_dict, *extra_dicts))

    def remove(self):
        for ref in self._refs:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def check_callable(op, hook):
    if not callable(hook):
        raise TypeError(f"{op}: hook must be callable, got {type(hook).__name__}")


def register_tensor_hook(tensor, hook):
    """``Tensor.register_hook``: see the module docstring for where the hook is kept."""
    check_callable("register_hook", hook)
    if not tensor.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that does not "
                           "require grad (no gradient is ever computed for it); set "
                           "requires_grad=True on it, or on the inputs it is computed from")
    fn = tensor.grad_fn
    if fn is None:
        hooks = getattr(tensor, "_hooks", None)
        if hooks is None:
            hooks = tensor._hooks = OrderedDict()
    else:
        if fn._hooks is None:
            fn._hooks = {}
        hooks = fn._hooks.setdefault(tensor._out_index, OrderedDict())
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


def run_tensor_hooks(hooks, g):
    """Pass gradient array ``g`` through ``hooks`` in order (each sees the previous one's
    replacement); returns the final array. A replacement must be a Tensor of g's shape,
    dtype and device."""
    for hook in tuple(hooks.values()):     # a hook may remove itself (or others)
        r = hook(Tensor(g))
        if r is None:
            continue
        if not isinstance(r, Tensor):
            raise TypeError(f"register_hook: hook {_name(hook)} must return a Tensor or None, "
                            f"got {type(r).__name__}")
        if r.data.shape != g.shape or r.data.dtype != g.dtype or type(r.data) is not type(g):
            raise RuntimeError(
                f"register_hook: hook {_name(hook)} returned a gradient of shape "
                f"{r.data.shape}, dtype {r.data.dtype} on {r.device}; the gradient it "
                f"replaces has shape {g.shape}, dtype {g.dtype} on {Tensor(g).device}")
        g = r.data
    return g


def _name(hook):
    return repr(getattr(hook, "__qualname__", None) or type(hook).__name__)
