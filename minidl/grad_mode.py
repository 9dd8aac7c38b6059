"""Grad mode: whether operations record the graph, per thread, as in PyTorch.

``no_grad``, ``enable_grad``, ``set_grad_enabled`` and ``inference_mode`` switch it (as context
managers, decorators, or, for ``set_grad_enabled``, a plain call); ``Function.__call__``
(``minidl.autograd``, which re-exports all of these) reads it on every op. A no_grad block in
one thread, e.g. a data or evaluation thread, does not switch recording off in the others.
"""
from __future__ import annotations

import functools
import inspect
import threading

from ._checks import check_bool


class _Mode(threading.local):
    enabled = True

    def __init__(self):
        self.saved = []          # modes to restore, innermost last (one stack per thread)


_mode = _Mode()


def is_grad_enabled():
    """Whether operations record the graph in this thread (every thread starts with it on;
    ``no_grad()``, ``inference_mode()`` and ``set_grad_enabled(False)`` turn it off)."""
    return _mode.enabled


def _decorate(fn, make):
    """``fn`` wrapped so that each call runs inside the context ``make()``. A generator
    function's body runs inside it at every step and the caller's mode comes back in between
    (as PyTorch does): wrapping only the call that creates the generator would switch the mode
    off again before its body runs."""
    if not inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with make():
                return fn(*args, **kwargs)
        return wrapper

    @functools.wraps(fn)
    def generator(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            with make():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with make():
                        gen.close()
                    raise
                except BaseException as exc:
                    with make():
                        response = gen.throw(exc)
                else:
                    with make():
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value
    return generator


class _GradMode:
    _value = True

    def __enter__(self):        # the previous mode goes on this thread's stack, not on self:
        _mode.saved.append(_mode.enabled)     # one no_grad() object may be entered by several
        _mode.enabled = self._value           # threads, or nested, at once

    def __exit__(self, *exc):
        _mode.enabled = _mode.saved.pop()
        return False

    def __call__(self, fn):
        return _decorate(fn, type(self))


class _BareDecorator(_GradMode):
    """Also usable as a bare decorator, ``@minidl.no_grad`` without parentheses (PyTorch 2)."""

    def __new__(cls, *args):
        if len(args) == 1 and callable(args[0]):
            return cls()(args[0])
        if args:
            raise TypeError(f"{cls.__name__}() takes no arguments (as a decorator: "
                            f"@{cls.__name__} or @{cls.__name__}()), got {args!r}")
        return super().__new__(cls)

    def __init__(self, *args):
        pass


class no_grad(_BareDecorator):
    """Context manager / decorator: ops inside record no graph (inference, optimizer steps)."""
    _value = False


class enable_grad(_BareDecorator):
    """Context manager / decorator: turn recording back on inside a ``no_grad`` block."""
    _value = True


class set_grad_enabled(_GradMode):
    """Switch recording on or off (``mode``, a bool) in this thread, as PyTorch does.

    Called as a function it switches at once and for good: ``minidl.set_grad_enabled(False)``.
    As a context manager (``with minidl.set_grad_enabled(is_train):``) the previous mode comes
    back when the block ends; as a decorator (``@minidl.set_grad_enabled(False)``) every call
    of the function runs in ``mode``, and the decoration itself changes nothing.
    """

    def __init__(self, mode):
        self._value = check_bool("set_grad_enabled", "mode", mode)
        self._prev = _mode.enabled      # the constructor switches (function form)
        _mode.enabled = self._value

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _mode.enabled = self._prev
        return False

    def __call__(self, fn):
        _mode.enabled = self._prev      # decorating is not switching
        value = self._value
        return _decorate(fn, lambda: set_grad_enabled(value))


class inference_mode(_GradMode):
    """Context manager / decorator for inference: in minidl the same as ``no_grad()``.

    PyTorch's inference mode also marks the tensors made inside as inference tensors (no
    version counters, refused by autograd later) to save a little bookkeeping; minidl has no
    such tensors, so ``inference_mode()`` only turns recording off in this thread, and
    ``inference_mode(False)`` turns it on (as PyTorch's does, even inside ``no_grad``). Usable
    bare as a decorator too (``@minidl.inference_mode``), as in PyTorch.
    """

    def __new__(cls, mode=True):
        if callable(mode):                          # @inference_mode without parentheses
            return cls()(mode)
        check_bool("inference_mode", "mode", mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self._mode_on = bool(mode)

    def __enter__(self):
        _mode.saved.append(_mode.enabled)
        _mode.enabled = not self._mode_on

    def __call__(self, fn):
        on = self._mode_on
        return _decorate(fn, lambda: inference_mode(on))
