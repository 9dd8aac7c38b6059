"""Module and Parameter: the containers networks are built from.

A Module registers, in definition order, the Parameters, buffers (non-trainable state such as
BatchNorm's running statistics) and sub-Modules assigned to its attributes. From that registry
come ``parameters()``, ``named_parameters()``, ``state_dict()``, ``to(device)``, ``train()`` /
``eval()`` and the printed tree, with PyTorch's names and semantics.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import autograd as _autograd
from .. import backend
from .._checks import check_bool
from ..autograd import no_grad
from ..tensor import Tensor
from .hooks import ModuleHooks, call_with_hooks


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (``requires_grad=True`` by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def module_device(module):
    """The device of ``module``'s first parameter, else of its first buffer; the CPU for a
    module that holds neither."""
    for first in (next(module.parameters(), None), next(module.buffers(), None)):
        if first is not None:
            return first.device
    return backend.CPU


def _owner(mod, path):
    """How an error message names module ``mod`` found at dotted ``path`` (a list)."""
    where = repr(".".join(path)) if path else "the root module"
    return f"{type(mod).__name__} ({where})"


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module(ModuleHooks):
    """Base class of all layers and networks: subclass it and define ``forward``.

    Forward and backward hooks (``register_forward_hook`` and the others, in ``nn.hooks``)
    are kept in ordered dictionaries on the module, run by ``__call__``, and are not part of
    ``state_dict``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        self._init_hooks()

    # -- registration --------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                               "assigning attributes in __init__")
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            bufs.pop(name, None)
            mods.pop(name, None)
            self._non_persistent.discard(name)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            bufs.pop(name, None)
            self._non_persistent.discard(name)
            mods[name] = value
        elif name in params:         # a registered slot keeps its kind, as in PyTorch
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as parameter '{name}' (a Parameter or None expected; wrap "
                                "a Tensor as nn.Parameter(t))")
            params[name] = None
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as buffer '{name}' (a Tensor or None expected)")
            bufs[name] = value
        elif name in mods:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as child module '{name}' (a Module or None expected)")
            mods[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for reg in (self._parameters, self._buffers, self._modules):
            reg.pop(name, None)
        self._non_persistent.discard(name)
        object.__delattr__(self, name)

    def _check_name(self, op, name, own):
        """A registry name: a non-empty str without dots (state_dict keys join names with
        dots), not taken by another kind of entry or by a plain attribute."""
        if not isinstance(name, str):
            raise TypeError(f"{op}: name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{op}: name must be non-empty and contain no '.', got {name!r}")
        if name in own:
            return
        for kind, reg in (("parameter", self._parameters), ("buffer", self._buffers),
                          ("child module", self._modules)):
            if reg is not own and name in reg:
                raise KeyError(f"{op}: '{name}' is already a {kind} of "
                               f"{type(self).__name__}; delete it first")
        if hasattr(self, name):
            raise KeyError(f"{op}: attribute '{name}' already exists on "
                           f"{type(self).__name__}")

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        self._check_name("register_parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Register non-trainable state (saved in state_dict unless ``persistent=False``)."""
        self._check_name("register_buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        self._check_name("add_module", name, self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module, got {type(module).__name__}")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # -- running -------------------------------------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        prof = _autograd.profiler_hook
        if prof is not None and prof.record_modules:       # minidl.profiler
            depth = prof.begin(type(self).__name__, "module", args)
            try:
                return self._call(args, kwargs)
            finally:
                prof.end(depth)
        return self._call(args, kwargs)

    def _call(self, args, kwargs):
        if (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks
                or self._backward_pre_hooks):
            return call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # -- traversal -----------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(name, module) for this module and every descendant, depth first (pre-order).

        Args:
            memo: a set of modules already listed (skipped, with their subtrees); updated.
            prefix: put before every name (``prefix.child``).
            remove_duplicate: list a module reachable along several paths only once (its
                first path); False lists every path.
        """
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if mod in memo:
                continue
            if remove_duplicate:
                memo.add(mod)
            yield name, mod
            children = [(f"{name}.{n}" if name else n, m) for n, m in mod._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """(name, child) for each child module, once each (a module registered twice under
        this one is yielded under its first name, as PyTorch does)."""
        seen = set()
        for n, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield n, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named(self, registry, prefix, recurse, remove_duplicate):
        seen = set()
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                if recurse else [(prefix, self)])
        for pre, mod in mods:
            for n, t in getattr(mod, registry).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{pre}.{n}" if pre else n), t

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs in registration order; shared ones listed once
        (unless ``remove_duplicate=False``). ``recurse=False``: this module's own only."""
        return self._named("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, buffer) pairs, as ``named_parameters``."""
        return self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        """The descendant named by dotted path ``target`` ("" is this module), e.g.
        ``net.get_submodule("layer1.0.conv1")``; AttributeError names the missing part."""
        if not isinstance(target, str):
            raise TypeError(f"get_submodule: target must be a str, got {type(target).__name__}")
        return self._walk("get_submodule", target, target)

    def _walk(self, op, path, target):
        """The module at dotted ``path`` (part of ``target``, for the error messages)."""
        mod = self
        done = []
        for item in path.split(".") if path else ():
            owner = _owner(mod, done)
            child = mod._modules.get(item)
            if child is None:
                if item in mod._modules or hasattr(mod, item):
                    raise AttributeError(f"{op}: '{item}' of {owner} is not a Module (in "
                                         f"target '{target}')")
                raise AttributeError(f"{op}: {owner} has no submodule '{item}' (in target "
                                     f"'{target}')")
            mod = child
            done.append(item)
        return mod

    def _get_entry(self, op, target, registry, kind):
        if not isinstance(target, str):
            raise TypeError(f"{op}: target must be a str, got {type(target).__name__}")
        path, _, name = target.rpartition(".")
        mod = self._walk(op, path, target)
        reg = getattr(mod, registry)
        owner = _owner(mod, path.split(".") if path else [])
        if not hasattr(mod, name):
            raise AttributeError(f"{op}: {owner} has no attribute '{name}' (in target "
                                 f"'{target}')")
        if name not in reg or (kind == "parameter" and reg[name] is None):
            raise AttributeError(f"{op}: '{name}' of {owner} is not a {kind} (in target "
                                 f"'{target}')")
        return reg[name]

    def get_parameter(self, target):
        """The Parameter named by dotted path ``target`` (``"layer1.0.conv1.weight"``)."""
        return self._get_entry("get_parameter", target, "_parameters", "parameter")

    def get_buffer(self, target):
        """The buffer named by dotted path ``target`` (``"bn1.running_mean"``)."""
        return self._get_entry("get_buffer", target, "_buffers", "buffer")

    def num_parameters(self, trainable_only=True):
        """Total number of parameter elements."""
        return int(sum(p.numel() for p in self.parameters()
                       if p.requires_grad or not trainable_only))

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant, then on self (as PyTorch does)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes and devices ---------------------------------------------------------------------
    def train(self, mode=True):
        """Switch this module and its descendants to training (or eval) mode: sets its own
        flag, then calls each child's ``train(mode)``, so a child that overrides ``train``
        (to keep its batch norms frozen, say) has its way, as in PyTorch."""
        mode = check_bool(f"{type(self).__name__}.train", "mode", mode)
        object.__setattr__(self, "training", mode)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (freeze with False); returns self."""
        check_bool(f"{type(self).__name__}.requires_grad_", "requires_grad", requires_grad)
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Drop (or zero) the gradients of all parameters."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:   # fresh zeros: a grad buffer is never written in place
                p.grad = Tensor(backend.xp_of(p.grad.data).zeros_like(p.grad.data))

    def to(self, device=None, dtype=None):
        """Move (and/or cast floating-point) parameters and buffers in place; returns self."""
        if dtype is None and device is not None and not isinstance(device, (str, backend.Device)):
            device, dtype = None, device
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}.to: dtype must be a floating-point "
                                f"type (float32, float64), got {dtype}")
        dev = backend.get_device(device) if device is not None else None
        for t in list(self.parameters()) + list(self.buffers()):
            data = t.data
            if dtype is not None and data.dtype.kind == "f":
                data = data.astype(dtype)
            if dev is not None:
                data = backend.to_device(data, dev)
            t.data = data
            if t.grad is not None:
                g = t.grad.data.astype(data.dtype)
                t.grad = Tensor(backend.to_device(g, dev) if dev is not None else g)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def half(self):
        """Cast floating-point parameters and buffers to float16, in place; returns self."""
        return self.to(dtype=np.float16)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self):
        """Ordered {dotted name: Tensor} of parameters and persistent buffers (sharing data)."""
        out = OrderedDict()
        # a module used in several places is listed under each of its names, as in PyTorch
        for prefix, mod in self.named_modules(remove_duplicate=False):
            pre = prefix + "." if prefix else ""
            for n, p in mod._parameters.items():
                if p is not None:
                    out[pre + n] = Tensor(p.data)
            for n, b in mod._buffers.items():
                if b is not None and n not in mod._non_persistent:
                    out[pre + n] = Tensor(b.data)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` into this module's parameters and buffers.

        Every shape must match and every value must hold real numbers; all of it is checked
        before anything is copied, so a failed load leaves the module as it was. With
        ``strict`` (default) missing or unexpected keys raise a RuntimeError listing all of
        them; otherwise they are returned as ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a mapping of names to tensors/arrays, "
                            f"got {type(state_dict).__name__}")
        own = self.state_dict()
        targets = {}
        for prefix, mod in self.named_modules(remove_duplicate=False):
            pre = prefix + "." if prefix else ""
            for reg in (mod._parameters, mod._buffers):
                for n, t in reg.items():
                    if t is not None and pre + n in own:
                        targets[pre + n] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for k, value in state_dict.items():
            if k in own:
                shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
                if shape != own[k].shape:
                    mismatched.append(f"{k}: checkpoint {shape}, model {own[k].shape}")
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"load_state_dict: cannot load into {type(self).__name__}: "
                               + " | ".join(problems))
        sources = {}                      # every value is checked before anything is copied
        for k, value in state_dict.items():
            if k in targets:
                src = value.data if isinstance(value, Tensor) else value
                if not hasattr(src, "dtype"):
                    src = np.asarray(src)
                if src.dtype.kind not in "biuf":
                    raise TypeError(f"load_state_dict: '{k}' must hold real numbers, got "
                                    f"dtype {src.dtype}; nothing was loaded")
                sources[k] = src
        with no_grad():
            for k, src in sources.items():
                t = targets[k]
                t.data[...] = backend.to_device(src, t.device).astype(t.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self):
        """One line of this module's own settings, shown in its repr."""
        return ""

    def __repr__(self):
        lines = []
        for name, mod in self._modules.items():
            body = repr(mod).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
