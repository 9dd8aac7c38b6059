"""``minidl.nn.functional``: the same functions as ``minidl.functional``, under the name PyTorch
code imports them by (``import minidl.nn.functional as F``).

Nothing is defined here: every attribute is looked up on ``minidl.functional`` when asked for,
so the two always hold the same objects, including names added to ``minidl.functional`` after
this module was imported. ``from minidl.nn.functional import *`` brings its public functions.
"""
import types as _types

from .. import functional as _F


def _public():
    """The public functions and constants of minidl.functional (its submodules left out)."""
    return sorted(k for k, v in vars(_F).items()
                  if not k.startswith("_") and not isinstance(v, _types.ModuleType))


def __getattr__(name):
    if name == "__all__":
        return _public()
    if not name.startswith("__"):    # not the package's own (__path__ would make this one)
        try:
            return getattr(_F, name)
        except AttributeError:
            pass
    raise AttributeError(f"module 'minidl.nn.functional' has no attribute {name!r} "
                         "(nor has minidl.functional)")


def __dir__():
    return sorted(set(globals()) | set(_public()))
