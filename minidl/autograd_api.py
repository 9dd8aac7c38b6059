"""The functional autograd API, PyTorch's names: ``grad`` and ``backward``.

``grad(outputs, inputs)`` returns the gradients of ``outputs`` with respect to ``inputs``
without writing any ``.grad``; ``backward(tensors)`` adds them into the ``.grad`` of the leaves
like ``Tensor.backward``, for several outputs at once and, given ``inputs``, only into those
tensors. Both check their arguments here, at the public boundary, then run the one engine,
``autograd.run_backward``; with ``inputs`` it walks only the nodes that lead to them.

This module is imported at the end of ``minidl.autograd``, which re-exports both functions:
use ``minidl.autograd.grad`` and ``minidl.autograd.backward``.
"""
from __future__ import annotations

from . import backend
from ._checks import check_bool
from .autograd import _accumulate_grad, _ref_counts, _unshared, run_backward
from .tensor import Tensor


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned instead of stored.

    Computes sum_j grad_outputs[j] . d(outputs[j])/d(inputs[i]) for each input (a
    vector-Jacobian product), walking only the part of the graph that leads to the inputs.
    No tensor's ``.grad`` is read or written (leaves, ``retain_grad`` tensors); the tensor
    hooks (``register_hook``) on the way run as in ``backward``.

    Args:
        outputs: a Tensor, or a list/tuple of Tensors, that require grad.
        inputs: a Tensor, or a list/tuple of Tensors, that require grad: leaves or tensors
            computed inside the graph (then the gradient is the one arriving at that tensor,
            summed over all its uses). An input may be listed twice.
        grad_outputs: None, or one entry per output (a lone Tensor or array for one output):
            d(something)/d(output) as a Tensor or array of the output's shape and device
            (cast to its dtype), or None, meaning 1, for a one-element output.
        retain_graph: keep the saved arrays of the nodes walked, so that the graph can be
            differentiated again; None means ``create_graph`` (False): they are freed.
        create_graph: must be False: minidl's backward is not itself differentiated
            (first-order gradients only), so there is no graph of the gradients to build.
        allow_unused: give None for an input that gets no gradient (no path from the
            outputs reaches it) instead of raising ValueError.

    Returns:
        A tuple with one Tensor per input, in order, shaped like that input (or None, with
        ``allow_unused=True``). Each owns its memory: writing into it changes nothing else.
    """
    op = "grad"
    refuse_create_graph(op, create_graph)
    retain_graph = _retain(op, retain_graph, create_graph)
    check_bool(op, "allow_unused", allow_unused)
    outputs = _tensors(op, "outputs", outputs)
    inputs = _tensors(op, "inputs", inputs)
    grads = _seed_grads(op, "grad_outputs", grad_outputs, "outputs", outputs)
    arrays = run_backward(list(outputs), grads, retain_graph, collect=inputs,
                          only_collect=True)
    results = []
    for i, x in enumerate(inputs):
        g = arrays[i]
        arrays[i] = None            # g is now the one reference this function holds
        if g is None:
            if not allow_unused:
                raise ValueError(
                    f"grad: {_label('inputs', i, inputs)} (shape {x.shape}) got no gradient: "
                    "no path from the outputs reaches it (or the ops on the way give it none)"
                    "; pass allow_unused=True to get None for it")
            results.append(None)
            continue
        # the engine's array may be shared (another input's gradient, a view of an op's
        # buffer, the caller's grad_outputs): keep it only when nothing else can reach it
        counts = _ref_counts(g)
        results.append(Tensor(g if _unshared(counts, g) else g.copy()))
    return tuple(results)


def refuse_create_graph(op, create_graph):
    """``create_graph`` must be False: minidl's backward is not itself differentiated."""
    check_bool(op, "create_graph", create_graph)
    if create_graph:
        raise NotImplementedError(
            f"{op}: create_graph=True is not supported: minidl's backward is not itself "
            "differentiated (first-order gradients only), so gradients of gradients cannot "
            f"be taken; call {op} with create_graph=False")


def backward(tensors, grad_tensors=None, retain_graph=None, inputs=None, create_graph=False):
    """Add the gradients of ``tensors`` into ``.grad``: ``Tensor.backward`` for several outputs.

    The gradients of all ``tensors`` are summed where their graphs meet, in one walk.

    Args:
        tensors: a Tensor, or a list/tuple of Tensors, that require grad.
        grad_tensors: None, or one entry per tensor (a lone Tensor or array for one tensor):
            d(something)/d(tensor) of the tensor's shape and device (cast to its dtype), or
            None, meaning 1, for a one-element tensor.
        retain_graph: keep the saved arrays so that backward can run through the graph again;
            None means False.
        inputs: None (every leaf that requires grad, and the ``retain_grad`` tensors, get
            their gradient), or a Tensor or list/tuple of Tensors: only their ``.grad`` is
            written (leaves or tensors inside the graph), and only the nodes leading to them
            run. An input no path reaches keeps its ``.grad``.
        create_graph: must be False (see ``grad``).

    Returns:
        None.
    """
    op = "backward"
    refuse_create_graph(op, create_graph)
    tensors = _tensors(op, "tensors", tensors)
    grads = _seed_grads(op, "grad_tensors", grad_tensors, "tensors", tensors)
    retain_graph = _retain(op, retain_graph, False)
    if inputs is None:
        run_backward(list(tensors), grads, retain_graph)
    else:
        backward_into(op, tensors, grads, retain_graph, inputs)


def backward_into(op, roots, grads, retain_graph, inputs):
    """Backpropagate arrays ``grads`` from ``roots`` and add the gradients into the ``.grad``
    of ``inputs`` only (``backward(inputs=...)``, ``Tensor.backward(inputs=...)``)."""
    inputs = _tensors(op, "inputs", inputs)
    arrays = run_backward(list(roots), grads, retain_graph, collect=inputs, only_collect=True)
    done = set()
    for x, g in zip(inputs, arrays):
        if g is not None and id(x) not in done:    # an input listed twice gets it once
            done.add(id(x))
            _accumulate_grad(x, g)                 # a copy: g may be shared


def _retain(op, retain_graph, default):
    if retain_graph is None:
        return default
    return check_bool(op, "retain_graph", retain_graph)


def _label(name, i, seq):
    return name if len(seq) == 1 else f"{name}[{i}]"


def _tensors(op, name, value):
    """``value``, a Tensor or a non-empty list/tuple of Tensors that require grad, as a
    tuple."""
    if isinstance(value, Tensor):
        value = (value,)
    elif not isinstance(value, (list, tuple)):
        raise TypeError(f"{op}: '{name}' must be a Tensor or a list/tuple of Tensors, got "
                        f"{type(value).__name__}")
    elif not value:
        raise ValueError(f"{op}: '{name}' must hold at least one Tensor, got an empty "
                         f"{type(value).__name__}")
    for i, t in enumerate(value):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name}[{i}] must be a Tensor, got {type(t).__name__}")
        if not t.requires_grad:
            raise ValueError(
                f"{op}: {_label(name, i, value)} (shape {t.shape}, dtype {t.dtype}) does not "
                "require grad (no grad_fn, requires_grad=False), so it has no gradient; set "
                "requires_grad=True on the leaves it is computed from")
    return tuple(value)


def _seed_grads(op, name, value, out_name, outputs):
    """The gradient arrays backward starts from, one per output, checked against it."""
    if value is None:
        value = (None,) * len(outputs)
    elif isinstance(value, Tensor) or backend.is_array(value):
        value = (value,)
    elif not isinstance(value, (list, tuple)):
        raise TypeError(f"{op}: '{name}' must be None, a Tensor, an array or a list/tuple of "
                        f"them, got {type(value).__name__}")
    if len(value) != len(outputs):
        raise ValueError(f"{op}: '{name}' has {len(value)} entries for {len(outputs)} "
                         f"{out_name}; give one per entry of '{out_name}'")
    grads = []
    for i, (g, y) in enumerate(zip(value, outputs)):
        where, what = _label(name, i, value), _label(out_name, i, outputs)
        if g is None:
            if y.data.size != 1:
                raise ValueError(
                    f"{op}: {where} is None, which means a gradient of 1 and is allowed only "
                    f"for a one-element output; {what} has shape {y.shape}: pass its gradient "
                    "(or reduce it to a scalar)")
            grads.append(backend.xp_of(y.data).ones_like(y.data))
            continue
        a = g.data if isinstance(g, Tensor) else g
        if not backend.is_array(a):
            raise TypeError(f"{op}: {where} must be a Tensor, an array or None, got "
                            f"{type(g).__name__}")
        if a.dtype.kind != "f":
            raise TypeError(f"{op}: {where} must be floating-point, got dtype {a.dtype}")
        if backend.device_of(a) != y.device:
            raise ValueError(f"{op}: {where} is on {backend.device_of(a)}, {what} on "
                             f"{y.device}; move it with .to(device)")
        if a.shape != y.shape:
            raise ValueError(f"{op}: {where} has shape {a.shape}, expected {what}'s shape "
                             f"{y.shape}")
        grads.append(a if a.dtype == y.dtype else a.astype(y.dtype))
    return grads

