"""The reverse-mode autograd engine: ``Function`` (the op contract) and backward.

Every differentiable operation is a ``Function``: ``forward`` maps input arrays to output
arrays and saves what ``backward`` needs; ``backward`` maps the gradients of the outputs to the
gradients of the inputs. Calling a Function on tensors records it as the ``grad_fn`` of its
outputs whenever an input requires grad (and grad mode is on), which builds the graph as the
program runs (define-by-run).

``run_backward`` (what ``Tensor.backward`` calls) walks that graph once in reverse topological
order, with an explicit stack (no recursion, so a chain of 10,000 ops works), sums the
gradients that reach a node along several paths before calling its backward, accumulates into
the ``.grad`` of leaves as PyTorch does, and then frees each node's saved arrays unless
``retain_graph=True``. Tensor hooks (``Tensor.register_hook``, ``minidl.hooks``) run where a
tensor's gradient is complete: a non-leaf's when its node is taken off the queue, a leaf's
before it is added into ``.grad``.

Given ``collect`` tensors it returns their gradients instead; with ``only_collect`` it walks
only the nodes that lead to them, the engine behind ``grad`` and ``backward(inputs=...)``
(``minidl.autograd_api``, re-exported here as ``minidl.autograd.grad`` and ``.backward``).

Grad mode (``no_grad`` and the rest) lives in ``minidl.grad_mode`` and is re-exported here.
``minidl.tensor`` defines ``Tensor`` first and imports this module at its end, so both can
refer to each other; import either through ``minidl``.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from . import backend
from .kernels import threads
from .tensor import Tensor
from .hooks import run_tensor_hooks
from .grad_mode import _mode
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["Function", "run_backward", "collecting_only", "grad", "backward", "enable_grad",
           "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled", "make_dot",
           "AccumulateGrad"]  # see the end

# ---------------------------------------------------------------------------------------------
# Function: the op contract

class Function:
    """Base class of every differentiable operation; subclass it to write your own op.

    Write ``forward(self, *arrays)`` returning an array (or a tuple of arrays) and
    ``backward(self, *grad_outputs)`` returning one gradient array (or None) per input, in
    input order. Keep what backward needs with ``self.save_for_backward(...)`` (read it back as
    ``self.saved``); ``self.needs_input_grad[i]`` tells whether input ``i`` wants a gradient.
    Hyperparameters go to ``__init__``. Inputs may be Tensors or Python numbers (numbers reach
    ``forward`` unchanged and get no gradient). Call an instance on inputs: ``MyOp()(x, y)``.
    """

    needs_input_grad = ()
    saved = ()
    _inputs = None
    _versions = ()
    _out_versions = ()     # (id of the output array, its version counter, version at forward)
    _retained = None
    _hooks = None          # {output index: OrderedDict of tensor hooks} (minidl.hooks)

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def name(self):
        """The op's name in the graph: its class name (as PyTorch's ``grad_fn.name()``)."""
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {id(self):#x}>"

    @property
    def next_functions(self):
        """Per input, where its gradient goes: (the op that made it, which of its outputs),
        (an ``AccumulateGrad`` holding a leaf that requires grad, 0), or (None, 0) for a
        constant or a number. Until backward frees the graph (``minidl.autograd_graph``)."""
        return _next_functions(self)

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def __call__(self, *inputs):
        if self._inputs is not None or self.saved is None:
            raise RuntimeError(
                f"{type(self).__name__}: this Function instance already recorded a call; "
                f"make a new instance for each call ({type(self).__name__}()(...)), since "
                "the instance holds what its backward needs")
        arrays = []
        first = None
        needs = []
        record = False
        enabled = _mode.enabled
        for x in inputs:
            if isinstance(x, Tensor):
                a = x.data
                if first is None:
                    first = a
                elif type(a) is not type(first):
                    raise RuntimeError(
                        f"{type(self).__name__}: inputs are on different devices "
                        f"({backend.device_of(first)} and {backend.device_of(a)}); "
                        "move them to one device with .to(device)")
                arrays.append(a)
                need = enabled and x.requires_grad
                record = record or need
                needs.append(need)
            else:
                arrays.append(x)
                needs.append(False)
        self.needs_input_grad = tuple(needs)
        prof = profiler_hook
        if prof is None:
            outputs = self.forward(*arrays)
        else:
            depth = prof.begin(type(self).__name__, "forward", arrays)
            outputs = self.forward(*arrays)
            prof.end(depth)
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        if any(isinstance(y, np.generic) for y in outputs):   # NumPy reductions give scalars
            outputs = tuple(np.asarray(y) if isinstance(y, np.generic) else y for y in outputs)
        # only floating-point results carry gradients (a cast to an integer or bool type,
        # a comparison: constants from here on, as in PyTorch)
        floats = [y.dtype.kind == "f" for y in outputs]
        if record and any(floats):
            self._inputs = inputs
            self._versions = tuple(x._version if isinstance(x, Tensor) else 0 for x in inputs)
            self._out_meta = tuple((y.shape, y.dtype) for y in outputs)
            results = []
            for i, (y, f) in enumerate(zip(outputs, floats)):
                if not f:
                    results.append(Tensor(y))
                    continue
                t = Tensor.__new__(Tensor)
                t.data, t.grad, t.grad_fn, t._out_index, t._requires_grad = y, None, self, i, True
                t._vc = [0]
                results.append(t)
        else:
            self.saved = ()
            results = [Tensor(y) for y in outputs]
        _share_versions(inputs, results)
        if self._inputs is not None:      # outputs the forward saved (exp, sqrt keep theirs)
            self._out_versions = tuple((id(t.data), t._vc, t._vc[0]) for t in results)
        return results[0] if single else tuple(results)

    def _release(self):
        self.saved = None
        self._inputs = None


_FREED_MSG = (
    "backward: trying to backward through the graph a second time (or through a graph that a "
    "previous backward already freed); pass retain_graph=True to the first backward if you "
    "need to run backward through the same graph again")


def _topological_order(roots):
    """Function nodes reachable from ``roots``, each before every node it depends on."""
    order = []
    visited = set()
    for root in roots:
        if root in visited:      # reached from an earlier root: already placed
            continue
        visited.add(root)
        stack = [(root, _parents(root))]
        while stack:
            node, parents = stack[-1]
            if parents:
                p = parents.pop()
                if p not in visited:
                    visited.add(p)
                    stack.append((p, _parents(p)))
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _prune(order, wanted, caps):
    """The nodes of ``order`` that lead to a wanted tensor (``run_backward(only_collect=True)``),
    still in order, and for each node whose backward must run the inputs to ask it for: those
    with ``needs_input_grad`` that are a wanted leaf (id in ``wanted``) or the output of a kept
    node. A node in ``caps`` is kept to collect its outputs' gradients even when its own
    backward leads nowhere wanted (then it has no mask and its backward is not called)."""
    masks = {}
    keep = set(caps)
    for fn in reversed(order):          # each node after every node it depends on
        mask = None
        for i, (x, need) in enumerate(zip(fn._inputs, fn.needs_input_grad)):
            if need and (id(x) in wanted if x.grad_fn is None else x.grad_fn in keep):
                if mask is None:
                    mask = [False] * len(fn._inputs)
                mask[i] = True
        if mask is not None:
            masks[fn] = tuple(mask)
            keep.add(fn)
    return [fn for fn in order if fn in keep], masks


def _backward_asking(fn, gys, mask):
    """``fn.backward(*gys)`` with ``needs_input_grad`` narrowed to ``mask`` for the call."""
    needs = fn.needs_input_grad
    fn.needs_input_grad = mask
    try:
        return fn.backward(*gys)
    finally:
        fn.needs_input_grad = needs


def _parents(fn):
    if fn._inputs is None:
        raise RuntimeError(_FREED_MSG)
    return [x.grad_fn for x, need in zip(fn._inputs, fn.needs_input_grad)
            if need and x.grad_fn is not None]


def _accumulate_grad(t, g, own=False):
    """Add ``g`` into ``t.grad``: a fresh array, so no two tensors ever share a grad buffer,
    unless ``own`` says that nothing else can reach g's memory (``_unshared``); then g itself
    becomes the first ``.grad``."""
    if t.grad is None:
        t.grad = Tensor(g if own else g.copy())
    else:
        t.grad = Tensor(t.grad.data + g)


def _ref_counts(a):
    """sys.getrefcount of array ``a`` and of each array down its chain of bases. Called as
    ``_ref_counts(name)``, the counts include that name and this call's own references."""
    counts = [sys.getrefcount(a)]
    b = a.base
    while b is not None:
        counts.append(sys.getrefcount(b))
        b = b.base
    return counts


def _calibrated_counts():
    """``_ref_counts`` of an array that one local name holds, and of the base of a view that
    one local name holds and nothing else refers to, measured on this interpreter (the counts
    of the call's own references differ between Python versions); None where there are no
    reference counts (not CPython)."""
    if not hasattr(sys, "getrefcount"):
        return None
    alone = np.empty(2)
    view = np.empty(2)[:]
    return _ref_counts(alone)[0], _ref_counts(view)[1]


_ALONE = _calibrated_counts()


def _unshared(counts, g):
    """Whether gradient array ``g``, held by a single name in ``run_backward`` (whose
    ``_ref_counts`` are ``counts``), can become a leaf's ``.grad`` without a copy: C-contiguous,
    referenced by nothing else, and owning its memory or viewing all of it through bases that
    nothing else refers to (a backward's reshaped result). A gradient another op also
    received, a view of part of a buffer, a cached buffer or the caller's own array fails one
    of these and is copied, as PyTorch copies a gradient it cannot steal."""
    # a read-only array (NumPy's broadcast views) is copied: users write into .grad; CuPy's
    # flags have no "writeable" (its arrays are all writeable)
    if (_ALONE is None or counts[0] != _ALONE[0] or not g.flags.c_contiguous
            or not getattr(g.flags, "writeable", True)):
        return False
    if any(c != _ALONE[1] for c in counts[1:]):
        return False
    return _owner(g).nbytes == g.nbytes


def _sum(summed, a, b):
    """a + b for two gradients of one tensor. A sum this backward made itself (listed in
    ``summed``) is added into in place; otherwise a new array holds the sum (a and b may be
    views of other ops' gradients). On the host the adding runs on the threads
    (``kernels.threads``): DenseNet's features each sum the gradients of every later layer."""
    if id(a) in summed:
        if backend._is_cupy_array(a):
            a += b
        else:
            threads.ufunc(np.add, a, b, out=a)
        return a
    c = a + b if backend._is_cupy_array(a) else threads.ufunc(np.add, a, b)
    summed[id(c)] = c
    return c


def _owner(a):
    """The array that owns ``a``'s memory: the end of its chain of bases (one link for plain
    NumPy views; NumPy subclasses, such as the emulated GPU's arrays, chain every view)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _share_versions(inputs, results):
    """A result that views an input's memory (reshape, transpose, indexing) shares that
    input's version counter, so an in-place change through either is seen by backward."""
    owners = None
    for t in results:
        if getattr(t.data, "base", None) is None:
            continue                                  # owns its memory: a fresh result
        if owners is None:
            owners = {id(_owner(x.data)): x for x in inputs if isinstance(x, Tensor)}
        x = owners.get(id(_owner(t.data)))
        if x is not None:
            t._vc = x._vc


def _holds(saved, a):
    """Whether one of ``saved`` (what a forward kept) is array ``a`` or a view of it."""
    return _holds_id(saved, id(a))


def _holds_id(saved, ident):
    """``_holds`` by the array's id: an output's id is kept instead of the output itself (which
    would keep every activation alive); a saved array with that id is that output, since both
    were alive when the forward returned."""
    for s in saved:
        while s is not None:
            if id(s) == ident:
                return True
            s = getattr(s, "base", None)
    return False


def _check_versions(fn):
    """Refuse to run ``fn.backward`` when an input it saved was changed in place since its
    forward (``Tensor.fill_``, ``copy_``, ``zero_``, an optimizer step): its gradient would be
    computed from the new values, silently wrong. PyTorch raises here too. Changes written
    into ``.data`` directly are not seen."""
    for i, (x, v) in enumerate(zip(fn._inputs, fn._versions)):
        if isinstance(x, Tensor) and x._version != v and _holds(fn.saved or (), x.data):
            raise RuntimeError(
                f"backward: input {i} of {type(fn).__name__} (shape {x.shape}) was modified "
                f"in place after the forward that saved it (version {v}, now {x._version}); "
                "its gradient would be wrong. Change it after backward, or give the "
                "forward a copy")
    for i, (ident, vc, v) in enumerate(fn._out_versions):
        if vc[0] != v and _holds_id(fn.saved or (), ident):
            raise RuntimeError(
                f"backward: output {i} of {type(fn).__name__}, which its backward uses, was "
                f"modified in place after the forward (version {v}, now {vc[0]}); its "
                "gradient would be wrong. Change a copy (y.clone()) instead")


# The open minidl.profiler.profile's recorder, or None: Function calls, the backward engine,
# Module calls and optimizer steps report to it (begin(name, kind, inputs) -> depth; end(depth)).
profiler_hook = None
_walk = threading.local()      # .only_collect: the mode of the backward running on this thread


def collecting_only():
    """Whether the backward now running on this thread is a ``run_backward(only_collect=True)``
    (``grad``, ``backward(inputs=...)``): a Function that runs a backward of its own inside
    its backward (``checkpoint``) then runs it the same way, so that no ``.grad`` is written."""
    return getattr(_walk, "only_collect", False)


def run_backward(root, grad, retain_graph=False, collect=(), only_collect=False,
                 collected_hooks=True):
    """Backpropagate ``grad`` through the graph of ``root`` (see ``_run_backward``); while it
    runs, ``collecting_only()`` says whether ``only_collect`` was asked, and grad mode is off
    (as in PyTorch: what hooks compute from parameters is not recorded)."""
    outer = collecting_only()
    _walk.only_collect = only_collect
    prof = profiler_hook
    depth = prof.begin("autograd.backward", "range") if prof is not None else 0
    try:
        with no_grad():
            return _run_backward(root, grad, retain_graph, collect, only_collect,
                                 collected_hooks)
    finally:
        _walk.only_collect = outer
        if depth and prof is profiler_hook:
            prof.end(depth)


def _run_backward(root, grad, retain_graph, collect, only_collect, collected_hooks):
    """Backpropagate ``grad`` (an array shaped like ``root``) through the graph of ``root``.

    Args:
        root, grad: a Tensor and d(something)/d(root), an array of its shape, dtype and
            device; or a list of Tensors and a list with one array each (summed where met).
        retain_graph: keep the saved arrays of the nodes whose backward ran (else freed).
        collect: tensors whose gradients are returned instead of added into ``.grad``:
            leaves, or outputs of nodes of the graph (taken when their node comes off the
            queue, after their hooks; they still flow on). A tensor may be listed twice.
        only_collect: compute the gradients of ``collect`` and nothing else: the nodes that
            lead to none of them are skipped (their backward is not called), the others are
            asked only for the input gradients that lead to one (``needs_input_grad``), and no
            ``.grad`` is written (neither leaves' nor ``retain_grad`` tensors').
        collected_hooks: run the hooks of collected leaves (False when the gradients are
            handed on to an outer backward that runs them itself, as ``checkpoint`` does).

    Returns:
        A list with the gradient array of each of ``collect``, in order (None where none
        arrived). Those arrays are the engine's own, possibly views of a gradient another op
        also received (or the same array twice), so they are for handing on as gradients
        (``checkpoint`` does), not for writing into; ``.grad`` gets a copy instead.
    """
    if isinstance(root, Tensor):
        root, grad = (root,), (grad,)
    wanted = {id(t) for t in collect}
    got = {}        # id of a collected tensor -> its gradient
    caps = {}       # node -> [(output index, tensor)]: the non-leaf tensors collected
    for t in collect:
        if t.grad_fn is not None:
            caps.setdefault(t.grad_fn, []).append((t._out_index, t))
    pending = {}    # node -> gradients of its outputs (None where none arrived yet)
    leaf_grads = {}
    summed = {}     # id -> array: the sums this call made (its own memory, added into in place)
    for t, g in zip(root, grad):
        fn = t.grad_fn
        if fn is None:
            prev = leaf_grads.get(id(t))
            leaf_grads[id(t)] = (t, g if prev is None else _sum(summed, prev[1], g))
            continue
        slots = pending.get(fn)
        if slots is None:
            slots = pending[fn] = [None] * len(fn._out_meta)
        k = t._out_index
        slots[k] = g if slots[k] is None else _sum(summed, slots[k], g)
    order = _topological_order(list(pending))
    masks = None
    prof = profiler_hook
    if only_collect:
        order, masks = _prune(order, wanted, caps)
    for fn in order:
        gys = pending.pop(fn, None)
        if gys is None:
            continue
        for g in gys:           # handed on from here: fn.backward may pass g on as it is
            summed.pop(id(g), None)
        if fn._hooks:           # the outputs' gradients are complete here: their hooks
            for i, hooks in fn._hooks.items():
                if hooks and gys[i] is not None:
                    gys[i] = run_tensor_hooks(hooks, gys[i])
        if fn._retained and not only_collect:
            for i, ref in fn._retained.items():
                t = ref()
                if t is not None and gys[i] is not None:
                    _accumulate_grad(t, gys[i])
        if caps:
            for i, t in caps.get(fn, ()):
                got[id(t)] = gys[i]
            if masks is not None and fn not in masks:
                continue        # kept only to collect: its backward leads nowhere wanted
        _check_versions(fn)
        if any(g is None for g in gys):   # multi-output op, only some outputs used
            xp = backend.xp_of(next(g for g in gys if g is not None))
            gys = [xp.zeros(*fn._out_meta[i]) if g is None else g for i, g in enumerate(gys)]
        depth = prof.begin(type(fn).__name__, "backward", fn._inputs) if prof is not None else 0
        if masks is None:
            asked = fn.needs_input_grad
            gxs = fn.backward(*gys)
        else:
            asked = masks[fn]
            gxs = _backward_asking(fn, gys, asked)
        if depth:
            prof.end(depth)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn._inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(gxs)} gradients for "
                f"{len(fn._inputs)} inputs")
        for x, need, gx in zip(fn._inputs, asked, gxs):
            if not need or gx is None:
                continue
            if isinstance(gx, np.generic):   # NumPy's ufuncs turn 0-d arrays into scalars
                gx = np.asarray(gx)
            if gx.shape != x.data.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape {gx.shape} "
                    f"for an input of shape {x.data.shape}")
            if gx.dtype != x.data.dtype:   # e.g. float32 input promoted by a float64 operand
                gx = gx.astype(x.data.dtype)
            parent = x.grad_fn
            if parent is None:
                prev = leaf_grads.get(id(x))
                leaf_grads[id(x)] = (x, gx if prev is None else _sum(summed, prev[1], gx))
            else:
                slots = pending.get(parent)
                if slots is None:
                    slots = pending[parent] = [None] * len(parent._out_meta)
                k = x._out_index
                slots[k] = gx if slots[k] is None else _sum(summed, slots[k], gx)
        if not retain_graph:
            fn._release()
    # drop every other reference to the gradients, so that the leaves can keep the ones
    # nothing else holds instead of copies (_unshared)
    gys = gxs = gx = prev = slots = None
    summed.clear()
    while leaf_grads:
        x, g = leaf_grads.popitem()[1]
        if only_collect and id(x) not in wanted:
            continue                           # a root that is a leaf nobody asked for
        hooks = getattr(x, "_hooks", None)     # complete: every path has been summed
        if hooks and (collected_hooks or id(x) not in wanted):
            g = run_tensor_hooks(hooks, g)
        if id(x) in wanted:
            got[id(x)] = g
        else:
            counts = _ref_counts(g)
            _accumulate_grad(x, g, own=_unshared(counts, g))
    g = None
    return [got.get(id(t)) for t in collect]


# The public grad/backward check their arguments, then call run_backward (defined above).
from .autograd_api import backward, grad  # noqa: E402
from .autograd_graph import AccumulateGrad, make_dot  # noqa: E402
from .autograd_graph import next_functions as _next_functions  # noqa: E402
