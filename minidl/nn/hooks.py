"""Module hooks: look at (or replace) what flows through a module, forward and backward.

``Module`` inherits the ``register_*`` methods from ``ModuleHooks``; ``Module.__call__`` runs
``call_with_hooks`` only when a hook is registered, so a module without hooks pays one check.

The full backward hooks follow PyTorch's design: around a call, the module's tensor inputs
that require grad go through an identity node (``_InputsNode``) and its tensor outputs
through another (``_OutputsNode``). Backward reaches the output node first: its backward sees
the complete gradients w.r.t. the outputs (``grad_output``; the backward pre-hooks run here).
The input node runs once every gradient w.r.t. the inputs has been summed inside the module;
its backward calls ``hook(module, grad_input, grad_output)``.
"""
from __future__ import annotations

from collections import OrderedDict

from ..autograd import Function, is_grad_enabled
from ..hooks import RemovableHandle, _name, check_callable
from ..tensor import Tensor


class ModuleHooks:
    """The hook registries and ``register_*`` methods of ``nn.Module`` (PyTorch's names)."""

    def _init_hooks(self):
        for name in ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                     "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                     "_backward_hooks", "_backward_pre_hooks"):
            object.__setattr__(self, name, OrderedDict())

    def _add_hook(self, op, hooks, hook, prepend, flags=()):
        check_callable(f"{type(self).__name__}.{op}", hook)
        handle = RemovableHandle(hooks, [f for f, on in flags])
        hooks[handle.id] = hook
        for f, on in flags:
            if on:
                f[handle.id] = True
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before each ``forward``.

        ``args`` is the tuple of positional arguments; the hook may return a replacement (a
        tuple, or one value that becomes a 1-tuple) or None. With ``with_kwargs=True`` it is
        ``hook(module, args, kwargs)`` and may return ``(args, kwargs)``. ``prepend=True``
        runs it before the hooks already registered. Returns a handle with ``.remove()``.
        """
        return self._add_hook("register_forward_pre_hook", self._forward_pre_hooks, hook,
                              prepend, [(self._forward_pre_hooks_with_kwargs, with_kwargs)])

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False,
                              always_call=False):
        """Call ``hook(module, args, output)`` after each ``forward``.

        The hook may return a replacement output, or None. With ``with_kwargs=True`` it is
        ``hook(module, args, kwargs, output)``; with ``always_call=True`` it runs even when
        ``forward`` raises (with output None, before the error propagates). Returns a handle.
        """
        return self._add_hook("register_forward_hook", self._forward_hooks, hook, prepend,
                              [(self._forward_hooks_with_kwargs, with_kwargs),
                               (self._forward_hooks_always_called, always_call)])

    def register_full_backward_hook(self, hook, prepend=False):
        """Call ``hook(module, grad_input, grad_output)`` once backward has computed the
        gradients w.r.t. the module's inputs.

        ``grad_input`` has one entry per positional argument (None for non-tensors and tensors
        that do not require grad), ``grad_output`` one per output (a Tensor or a tuple; None
        for entries that are not tensors). The hook may return a replacement ``grad_input``
        (same length, None keeps an entry's gradient from flowing on) or None. When no input
        requires grad it is called with all-None ``grad_input`` once ``grad_output`` is known.
        Keyword arguments are passed to forward but get no gradient here (as in PyTorch).
        """
        return self._add_hook("register_full_backward_hook", self._backward_hooks, hook,
                              prepend)

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """Call ``hook(module, grad_output)`` once backward has the gradients w.r.t. the
        module's outputs, before they flow into the module; it may return a replacement
        ``grad_output`` (a tuple of the same length) or None."""
        return self._add_hook("register_full_backward_pre_hook", self._backward_pre_hooks,
                              hook, prepend)

    def register_backward_hook(self, hook):
        raise NotImplementedError(
            f"{type(self).__name__}.register_backward_hook: the old (non-full) backward hooks "
            "are not supported (PyTorch deprecates them); use register_full_backward_hook")


def call_with_hooks(module, args, kwargs):
    """``module(*args, **kwargs)`` with its forward and backward hooks (PyTorch's order:
    forward pre-hooks, backward setup on the inputs, forward, forward hooks, backward setup on
    the outputs)."""
    for hid, hook in tuple(module._forward_pre_hooks.items()):
        if hid in module._forward_pre_hooks_with_kwargs:
            r = hook(module, args, kwargs)
            if r is not None:
                if not (isinstance(r, tuple) and len(r) == 2):
                    raise RuntimeError(
                        f"forward pre-hook {_name(hook)} registered with with_kwargs=True "
                        f"must return None or a tuple (args, kwargs), got {_describe(r)}")
                args, kwargs = r
                if not isinstance(kwargs, dict):
                    raise RuntimeError(
                        f"forward pre-hook {_name(hook)} registered with with_kwargs=True "
                        f"must return (args, kwargs) with kwargs a dict, got "
                        f"{type(kwargs).__name__}")
                args = args if isinstance(args, tuple) else (args,)
        else:
            r = hook(module, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
    state = None
    if (module._backward_hooks or module._backward_pre_hooks) and is_grad_enabled():
        state = _BackwardState(module)
        args = state.wrap_inputs(args)
    try:
        out = module.forward(*args, **kwargs)
    except Exception:
        for hid, hook in tuple(module._forward_hooks.items()):
            if hid in module._forward_hooks_always_called:
                _call_forward_hook(module, hid, hook, args, kwargs, None)
        raise
    for hid, hook in tuple(module._forward_hooks.items()):
        r = _call_forward_hook(module, hid, hook, args, kwargs, out)
        if r is not None:
            out = r
    if state is not None:
        out = state.wrap_outputs(out)
    return out


def _call_forward_hook(module, hid, hook, args, kwargs, out):
    if hid in module._forward_hooks_with_kwargs:
        return hook(module, args, kwargs, out)
    return hook(module, args, out)


class _BackwardState:
    """One hooked call of a module with full backward hooks: which arguments went through
    the input node, and the ``grad_output`` its output node saw."""

    def __init__(self, module):
        self.module = module
        self.n_args = 0
        self.positions = ()     # argument positions that went through _InputsNode
        self.n_outputs = 0
        self.out_positions = ()
        self.grad_output = None

    def wrap_inputs(self, args):
        self.n_args = len(args)
        self.positions = tuple(i for i, a in enumerate(args)
                               if isinstance(a, Tensor) and a.requires_grad)
        if not self.positions:
            return args
        ys = _InputsNode(self)(*[args[i] for i in self.positions])
        args = list(args)
        for i, y in zip(self.positions, ys):
            args[i] = y
        return tuple(args)

    def wrap_outputs(self, out):
        single = isinstance(out, Tensor)
        if not single and not isinstance(out, tuple):
            raise TypeError(
                f"{type(self.module).__name__}: full backward hooks need forward to return a "
                f"Tensor or a tuple, got {type(out).__name__} (not supported in minidl)")
        outs = (out,) if single else out
        self.n_outputs = len(outs)
        self.out_positions = tuple(i for i, o in enumerate(outs)
                                   if isinstance(o, Tensor) and o.requires_grad)
        if not self.out_positions:
            return out
        ys = _OutputsNode(self)(*[outs[i] for i in self.out_positions])
        outs = list(outs)
        for i, y in zip(self.out_positions, ys):
            outs[i] = y
        return outs[0] if single else tuple(outs)

    def output_grads(self, gys):
        """Run the backward pre-hooks on the gradients w.r.t. the outputs; keep them."""
        grads = _pack(gys, self.out_positions, self.n_outputs)
        for hook in tuple(self.module._backward_pre_hooks.values()):
            r = hook(self.module, grads)
            if r is not None:
                grads = _check_grads("backward pre-hook", hook, "grad_output", r, grads)
        self.grad_output = grads
        if not self.positions:          # no input needs a gradient: call the hooks now
            self.call_hooks(_pack((), (), self.n_args), none_only=True)
        return tuple(None if grads[i] is None else grads[i].data for i in self.out_positions)

    def call_hooks(self, grad_input, none_only=False):
        grad_output, self.grad_output = self.grad_output, None
        if grad_output is None:         # the outputs got no gradient through this call
            grad_output = (None,) * self.n_outputs
        for hook in tuple(self.module._backward_hooks.values()):
            r = hook(self.module, grad_input, grad_output)
            if r is None:
                continue
            if none_only:
                if not (isinstance(r, (tuple, list)) and all(g is None for g in r)):
                    raise RuntimeError(
                        f"full backward hook {_name(hook)} of {type(self.module).__name__}: "
                        "no input of this call requires grad, so the hook must return None "
                        "(or only Nones)")
                continue
            grad_input = _check_grads("full backward hook", hook, "grad_input", r, grad_input)
        return grad_input


class _OutputsNode(Function):
    """Identity on a module's outputs; backward hands on the (pre-hooked) grad_output."""

    def __init__(self, state):
        self.state = state

    def forward(self, *arrays):
        return tuple(a.view() for a in arrays)   # views: share the version counters

    def backward(self, *gys):
        return self.state.output_grads(gys)


class _InputsNode(Function):
    """Identity on a module's inputs; backward calls the full backward hooks."""

    def __init__(self, state):
        self.state = state

    def forward(self, *arrays):
        return tuple(a.view() for a in arrays)

    def backward(self, *gys):
        st = self.state
        grad_input = st.call_hooks(_pack(gys, st.positions, st.n_args))
        return tuple(None if grad_input[i] is None else grad_input[i].data
                     for i in st.positions)


def _pack(arrays, positions, n):
    """A tuple of n gradients: Tensors of ``arrays`` at ``positions``, None elsewhere."""
    out = [None] * n
    for i, a in zip(positions, arrays):
        out[i] = None if a is None else Tensor(a)
    return tuple(out)


def _check_grads(kind, hook, what, new, old):
    """A hook's replacement for gradient tuple ``old``: same length, Tensors of the same
    shape, dtype and device (or None)."""
    if not isinstance(new, (tuple, list)) or len(new) != len(old):
        raise RuntimeError(f"{kind} {_name(hook)} must return None or a tuple of {len(old)} "
                           f"{what} entries (Tensors or None), got {_describe(new)}")
    for i, (g, o) in enumerate(zip(new, old)):
        if g is None:
            continue
        if not isinstance(g, Tensor):
            raise TypeError(f"{kind} {_name(hook)}: {what}[{i}] must be a Tensor or None, "
                            f"got {type(g).__name__}")
        if o is None:
            raise RuntimeError(f"{kind} {_name(hook)}: {what}[{i}] was None (not a tensor, or "
                               "one that gets no gradient), so its replacement must be None, "
                               f"got a Tensor of shape {g.shape}")
        if g.shape != o.shape or g.dtype != o.dtype or g.device != o.device:
            raise RuntimeError(
                f"{kind} {_name(hook)}: {what}[{i}] has shape {g.shape}, dtype {g.dtype} on "
                f"{g.device}; expected {o.shape}, {o.dtype} on {o.device}")
    return tuple(new)


def _describe(x):
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of length {len(x)}"
    return type(x).__name__
