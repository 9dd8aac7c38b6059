"""Containers: Sequential, ModuleList, ModuleDict, and the pass-through Identity, Flatten and
Unflatten."""
from __future__ import annotations

import numbers
from collections import OrderedDict

from .. import functional as F
from .._checks import check_int
from ..functional._utils import check_tensor, normalize_dim
from .module import Module


class ModuleList(Module):
    """A list of modules whose parameters are registered (no forward of its own)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.append: expected a Module, got "
                            f"{type(module).__name__}")
        k = len(self._modules)
        while str(k) in self._modules:        # a slice keeps its names: never overwrite one
            k += 1
        self.add_module(str(k), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        items = list(self._modules.items())
        return self._like(items[i]) if isinstance(i, slice) else items[self._index(i)][1]

    def _index(self, i, insert=False):
        """``i`` as a position (negative ones from the end), or an IndexError naming it;
        ``insert``: a position to insert at, clamped to 0..len as list.insert does."""
        n = len(self._modules)
        i = check_int(f"{type(self).__name__}", "index", i)
        if insert:
            return min(max(i + n if i < 0 else i, 0), n)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {i} is out of range for "
                             f"{n} modules")
        return i % n

    def __setitem__(self, i, module):
        """Replace the module at position ``i``; it keeps that position's name."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: a Module is expected, got "
                            f"{type(module).__name__}")
        self.add_module(list(self._modules)[self._index(i)], module)

    def __delitem__(self, i):
        """Remove the module(s) at ``i`` (an int or a slice); the rest are numbered afresh
        0, 1, ... as in PyTorch."""
        keys = list(self._modules)
        for k in (keys[i] if isinstance(i, slice) else [keys[self._index(i)]]):
            delattr(self, k)
        self._refill(list(self._modules.values()))

    def insert(self, index, module):
        """Insert ``module`` before position ``index`` (renumbering the ones after it)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.insert: expected a Module, got "
                            f"{type(module).__name__}")
        modules = list(self._modules.values())
        modules.insert(self._index(index, insert=True), module)
        self._refill(modules)

    def _refill(self, modules):
        """Hold ``modules``, named 0, 1, ... afresh."""
        for k in list(self._modules):
            delattr(self, k)
        for n, m in enumerate(modules):
            self.add_module(str(n), m)

    def pop(self, i=-1):
        """Remove and return the module at position ``i``."""
        module = self[i]
        del self[i]
        return module

    def __add__(self, other):
        """A new container of this kind holding both containers' modules, numbered afresh."""
        if not isinstance(other, ModuleList):
            return NotImplemented
        out = type(self)._like([])
        for m in list(self) + list(other):
            out.append(m)
        return out

    @staticmethod
    def _like(items):
        """A container of this kind holding the (name, module) ``items`` (what slicing
        returns): a ModuleList numbers them afresh."""
        return ModuleList(m for _, m in items)


class Sequential(ModuleList):
    """Runs its modules in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Also accepts one OrderedDict of name -> module.
    """

    def __init__(self, *modules):
        Module.__init__(self)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = modules[0].items()
        else:
            items = ((str(i), m) for i, m in enumerate(modules))
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: every entry must be a Module, '{name}' is "
                                f"{type(m).__name__}")
            self.add_module(name, m)

    @staticmethod
    def _like(items):
        """A slice keeps its modules' names (and so their state_dict keys), as in PyTorch."""
        return Sequential(OrderedDict(items))

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleDict(Module):
    """An ordered dict of named modules whose parameters are registered."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def update(self, modules):
        """Add (or replace) the modules of a mapping or of an iterable of (name, module)."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: expected a mapping or (name, module) "
                                f"pairs, got an entry {pair!r}")
            self[pair[0]] = pair[1]

    def __delitem__(self, key):
        self[key]                               # KeyError for a missing key
        delattr(self, key)

    def __contains__(self, key):
        return key in self._modules

    def pop(self, key):
        """Remove and return the module named ``key``."""
        module = self[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._modules):
            delattr(self, key)

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: '{key}' must be a Module, got {type(module).__name__}")
        self.add_module(key, module)

    def __getitem__(self, key):
        return self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()


class Identity(Module):
    """Returns its input unchanged."""

    def forward(self, x):
        return x


class Flatten(Module):
    """Flattens dimensions start_dim..end_dim (default: all but the batch dimension)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expands dimension ``dim`` into ``unflattened_size`` (a tuple of ints whose product is
    that dimension's size; one entry may be -1, inferred): the inverse of Flatten."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        dim = check_int("Unflatten", "dim", dim)
        if not isinstance(unflattened_size, (tuple, list)) or not unflattened_size or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and (s >= 0 or s == -1)
                for s in unflattened_size) or list(unflattened_size).count(-1) > 1:
            raise TypeError(f"Unflatten: 'unflattened_size' must be a non-empty tuple of "
                            f"non-negative ints (one may be -1), got {unflattened_size!r}")
        self.dim = dim
        self.unflattened_size = tuple(int(s) for s in unflattened_size)

    def forward(self, x):
        check_tensor("Unflatten", "input", x)
        if x.ndim == 0:
            raise ValueError("Unflatten: cannot unflatten a 0-d tensor")
        d = normalize_dim("Unflatten", self.dim, x.ndim)
        sizes, n = self.unflattened_size, x.shape[d]
        known = 1
        for s in sizes:
            known *= s if s != -1 else 1
        if (-1 not in sizes and known != n) or (-1 in sizes and (known == 0 or n % known)):
            raise ValueError(f"Unflatten: dim {d} of size {n} (input shape {x.shape}) cannot "
                             f"be unflattened into {sizes}")
        return F.reshape(x, x.shape[:d] + sizes + x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
