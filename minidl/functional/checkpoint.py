"""Recomputation ("gradient checkpointing"): trade compute for memory.

``checkpoint(function, inputs)`` returns ``function(*inputs)`` but keeps none of the arrays
inside it for backward: only the inputs (which usually exist anyway) are held, and backward
runs ``function`` again, with gradients on, to get them. Memory-efficient DenseNets use it on
each layer's concatenate -> BN -> ReLU -> conv, so the concatenations are never stored and
memory grows linearly, not quadratically, with depth.

Reference: Pleiss et al., Memory-Efficient Implementation of DenseNets, 2017; Chen et al.,
Training Deep Nets with Sublinear Memory Cost, 2016.
"""
from __future__ import annotations

from .. import backend
from ..random import default_generator, get_rng_state, set_rng_state
from ..autograd import (Function, _topological_order, collecting_only, enable_grad,
                        is_grad_enabled, no_grad, run_backward)
from ..tensor import Tensor
from ._utils import check_tensor


class Checkpoint(Function):
    """y = f(x_1, ..., x_k), with f's intermediate arrays recomputed in backward.

    Gradient: gx_i = d(sum(gy * f(x)))/dx_i, obtained by running f again on the saved inputs
    with recording on and back-propagating gy through that fresh graph. The parameters f uses
    receive their gradients during that inner backward (they are listed as further inputs only
    so that this node is recorded whenever they require grad). The random state is replayed,
    so dropout inside f draws the same masks, and ``buffers`` (e.g. BatchNorm's running
    statistics) are restored after the recomputation, so they are updated once, as without
    checkpointing.

    Replaying the random state is exact on every device: the CPU generator's state is
    PCG64's, a GPU generator's is its seed and the offset of its counter-based stream (host
    integers, ``minidl.random``), so neither saving nor restoring it touches the GPU. The
    generators of the inputs' devices are created before the state is saved, so a dropout
    that draws a device's first numbers inside f is replayed too.
    """

    def __init__(self, function, n_inputs, buffers, parameters=()):
        self.function, self.n_inputs, self.buffers = function, n_inputs, buffers
        self.parameters = parameters

    def forward(self, *arrays):
        for a in arrays[:self.n_inputs]:    # exist now, so that their state is saved
            default_generator(backend.device_of(a))
        self.rng = get_rng_state()
        with no_grad():
            y = self.function(*[Tensor(a) for a in arrays[:self.n_inputs]])
        if not isinstance(y, Tensor):
            raise TypeError(f"checkpoint: the function must return a Tensor, got "
                            f"{type(y).__name__}")
        self.save_for_backward(*arrays[:self.n_inputs])
        return y.data

    def backward(self, gy):
        needs = self.needs_input_grad
        now = get_rng_state()
        kept = [b.data.copy() for b in self.buffers]
        set_rng_state(self.rng)
        try:
            with enable_grad():
                inputs = [Tensor(a, requires_grad=need)
                          for a, need in zip(self.saved, needs)]
                y = self.function(*inputs)
            grads = [None] * len(inputs)
            if y.requires_grad:          # the inputs' gradients handed on, not copied
                if gy.dtype != y.dtype or gy.shape != y.shape:
                    raise RuntimeError(f"checkpoint: the recomputed output is {y.dtype} "
                                       f"{y.shape}, the first run's was {gy.dtype} {gy.shape}")
                # the listed parameters' gradients are returned too, so that the engine
                # running this backward decides where they go (.grad, or autograd.grad's
                # result) and runs their hooks once; parameters f uses but that were not
                # listed get theirs added into .grad here, except under grad() and
                # backward(inputs=...), which must write no other .grad: there they are
                # refused (_check_listed)
                only = collecting_only()
                if only:
                    _check_listed(y, inputs + list(self.parameters))
                grads = run_backward(y, gy, collect=inputs + list(self.parameters),
                                     only_collect=only, collected_hooks=False)
        finally:
            set_rng_state(now)
            for b, k in zip(self.buffers, kept):
                b.data[...] = k
        grads = [g if need else None for g, need in zip(grads, needs)]
        return tuple(grads) + (None,) * (len(needs) - len(grads))


def _check_listed(y, listed):
    """Refuse, under ``grad()``, a recomputed graph with a leaf that requires grad but is not
    among the inputs and ``parameters`` (its gradient could only go into its ``.grad``)."""
    if y.grad_fn is None:
        return
    ids = {id(t) for t in listed}
    for fn in _topological_order([y.grad_fn]):
        for x in fn._inputs:
            if x.grad_fn is None and x.requires_grad and id(x) not in ids:
                raise RuntimeError(
                    f"checkpoint: the function uses a tensor {x.shape} that requires grad but "
                    "is not in 'parameters'; autograd.grad and backward(inputs=...) through "
                    "a checkpoint need every such tensor listed in checkpoint(..., "
                    "parameters=[...])")


def checkpoint(function, inputs, parameters=(), buffers=()):
    """``function(*inputs)`` without storing its intermediate arrays (recomputed in backward).

    Args:
        function: maps the Tensors ``inputs`` to one Tensor; must be deterministic given the
            random state (dropout is fine: the state is replayed).
        inputs: list of Tensors passed to ``function``.
        parameters: the Parameters ``function`` uses. Their gradients are returned by the
            backward like the inputs', so the engine running it puts them where it puts every
            gradient (``.grad``, or the result of ``autograd.grad``); a parameter used but
            not listed gets its gradient added into its ``.grad`` during that backward, and
            is refused (RuntimeError) under ``autograd.grad`` / ``backward(inputs=...)``.
        buffers: Tensors ``function`` updates in place (BatchNorm running statistics), restored
            after the recomputation so the update happens once.

    Returns:
        The Tensor ``function(*inputs)``. Without grad recording this is a plain call.
    """
    if not callable(function):
        raise TypeError(f"checkpoint: 'function' must be callable, got {type(function).__name__}")
    if isinstance(inputs, Tensor) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"checkpoint: 'inputs' must be a list of Tensors, got "
                        f"{type(inputs).__name__}")
    for name, seq in (("inputs", inputs), ("parameters", parameters), ("buffers", buffers)):
        for i, t in enumerate(seq):
            check_tensor("checkpoint", f"{name}[{i}]", t)
    if not is_grad_enabled():
        return function(*inputs)
    return Checkpoint(function, len(inputs), list(buffers), list(parameters))(
        *inputs, *parameters)
