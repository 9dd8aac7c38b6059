"""CUDA graphs: record a whole training step once, replay it every step.

A small CIFAR network's training step on a GPU is hundreds of small kernels, and issuing each
from Python costs the host more time (about 8 us) than the GPU spends running it: the step is
bound by launches, not arithmetic. A CUDA graph records the step's kernels once (stream
capture) and replays all of them with one call, so the Python work of the forward pass,
autograd and the optimizer is paid once instead of every step.

    step = minidl.cuda_graph.GraphedStep(train_step)     # train_step(x, y) -> loss Tensor
    for x, y in loader:                                  # fixed shapes (drop_last=True)
        loss = step(x, y)
        scheduler.step()

``train_step`` runs eagerly for the first ``warmup`` calls (lazy state such as momentum buffers
and flat optimizer buffers gets created), then is captured once, and from then on each call
copies its arguments into the captured input buffers and replays the graph. It returns the
same output Tensors every time, overwritten by each replay: read them (``loss.item()``) before
the next call, or copy them.

What a captured step may contain, and what the replay keeps right:

- **Fixed shapes and dtypes**: every call must pass tensors shaped as the first; anything else
  is refused (run odd batches eagerly, or drop them).
- **Hyperparameters**: the optimizer reads them through device scalars refreshed before every
  replay, so schedulers work as usual. If a change alters the recorded work itself (a
  momentum set to 0, a group added, parameters rebound, buffers replaced by
  ``load_state_dict``), the step runs eagerly once and is captured again. Only optimizers with
  no host-side per-step state can be captured (``SGD``; Adam's bias correction counts steps on
  the host): the others raise a clear error. Every other number the step passes as a Python
  value is recorded as it was at the capture and not watched: BatchNorm's ``momentum`` and
  ``eps``, ``cross_entropy``'s ``label_smoothing`` and the like; changing one afterwards has
  no effect on the replays (make a new ``GraphedStep`` to change them). BatchNorm's
  ``momentum=None`` (cumulative average) is computed on the device, so it keeps counting.
- **No host reads or random numbers** inside the step: ``item()``, printing a tensor, Python
  branches on tensor values, boolean-mask indexing (its size is read back), dropout or other
  GPU random draws raise a clear error while capturing; an error inside the captured step is
  raised as it is, after the capture is ended. Deferred checks (``cross_entropy``'s label
  range) are recorded: every replay ORs its result into a flag that is read at the next
  synchronization, so a bad label in any replayed step raises there, as in eager mode.
- **Matrix products** go through cuBLAS called directly (``kernels/cublas.py``) while
  capturing, because CuPy refuses its own cuBLAS calls then.
- **Memory**: the capture allocates from a memory pool of its own that nothing else draws
  from, so memory the graph writes on replay is never handed to other arrays (PyTorch keeps a
  private pool per graph for the same reason). That pool (one per ``GraphedStep``, reused by
  its re-captures) is kept for the life of the process: arrays the capture made, such as the
  gradients, may outlive the ``GraphedStep``.

The step runs (warm-up, capture and replays) on a stream of its own, ordered after the work
already queued on the current stream and before the work queued on it afterwards.
"""
from __future__ import annotations

from . import backend
from ._checks import check_int
from .profiler import record_function
from .tensor import Tensor

_pools = []      # the private memory pools of all captures: kept, see the module docstring


class GraphedStep:
    """``fn`` captured as a CUDA graph after ``warmup`` eager calls (see the module doc).

    Args:
        fn: the step: called with the Tensors given to this object, returns a Tensor, a tuple or
            list of Tensors, or None.
        warmup: eager calls before the capture (>= 1; lazily created state must exist before
            capturing).

    Attributes:
        calls: how many times the step was called.
        captures: how many times it was captured (1, plus re-captures after changes of the
            optimizer's structure; the call that notices such a change runs eagerly, so that
            new hyperparameters get their device scalars, and the next one captures).
    """

    def __init__(self, fn, warmup=2):
        if not callable(fn):
            raise TypeError(f"GraphedStep: fn must be callable, got {type(fn).__name__}")
        warmup = check_int("GraphedStep", "warmup", warmup, 1)
        self.fn, self.warmup = fn, warmup
        self._eager_left = warmup
        self.calls = self.captures = 0
        self.deferred_checks = []   # checks recorded by the capture, re-queued per replay
        self._scalars = {}          # key -> (0-d device array, getter of its value)
        self._optimizers = {}       # id -> optimizer whose step runs inside fn
        self._signature = None
        self._stream = self._pool = None
        self._graph = self._structure = self._inputs = self._outputs = None

    # -- called from inside the step (backend.active_graph()) -------------------------------------
    def scalar(self, key, get, like):
        """The device scalar for ``key`` (made and set on first use, which must come before the
        capture); its value ``get()`` is rewritten before every replay."""
        entry = self._scalars.get(key)
        if entry is None:
            if backend.capturing():
                raise RuntimeError(f"GraphedStep: hyperparameter {key[2]!r} was first read while "
                                   "capturing; it must be read in the warm-up calls too")
            arr = backend.xp_of(like).empty((), like.dtype)
            entry = self._scalars[key] = (arr, get)
        if not backend.capturing():
            entry[0].fill(get())
        return entry[0]

    def watch(self, optimizer):
        """Note an optimizer whose step is part of the graph (its structure is watched)."""
        self._optimizers[id(optimizer)] = optimizer

    # -- calling -----------------------------------------------------------------------------------
    def __call__(self, *args):
        signature = self._check(args)
        if self._signature is None:
            self._signature = signature
        elif signature != self._signature:
            raise ValueError(
                f"GraphedStep: the arguments must keep the shapes, dtypes and device of the "
                f"first call ({_describe(self._signature)}), got {_describe(signature)}; a CUDA "
                "graph replays fixed shapes (drop or run odd-sized batches eagerly)")
        cp = backend.cupy_module()
        if self._stream is None:
            self._stream = cp.cuda.Stream(non_blocking=True)
        self.calls += 1
        if self._graph is not None and self._structure_now() != self._structure:
            self._graph, self._eager_left = None, 1     # new work: one eager call, then capture
        if self._eager_left:
            self._eager_left -= 1
            return self._on_stream(lambda: self._run(args, capture=False))
        if self._graph is None:
            self._capture(args)
        return self._replay(args)

    def _check(self, args):
        if not args:
            raise TypeError("GraphedStep: the step needs at least one Tensor argument")
        signature = []
        for i, a in enumerate(args):
            if not isinstance(a, Tensor):
                raise TypeError(f"GraphedStep: argument {i} must be a Tensor, got "
                                f"{type(a).__name__}")
            if a.device.type != "cuda":
                raise ValueError(f"GraphedStep: argument {i} is on {a.device}; CUDA graphs "
                                 "need the step's tensors on a cuda device")
            signature.append((a.shape, a.dtype, str(a.device)))
        return tuple(signature)

    def _on_stream(self, work):
        """Run ``work`` on the step's stream, after what the current stream has queued and
        before what it queues next."""
        cp = backend.cupy_module()
        current, stream = cp.cuda.get_current_stream(), self._stream
        stream.wait_event(current.record())
        with stream:
            result = work()
        current.wait_event(stream.record())
        return result

    def _run(self, args, capture):
        backend._graph, backend._capturing = self, capture
        try:
            return self.fn(*args)
        finally:
            backend._graph, backend._capturing = None, False

    def _structure_now(self):
        return tuple(opt._graph_structure() for opt in self._optimizers.values())

    def _capture(self, args):
        from .kernels import cublas  # noqa: PLC0415
        cp = backend.cupy_module()
        if self._inputs is None:
            self._inputs = [Tensor(a.data.copy(), requires_grad=a.requires_grad) for a in args]
        self._graph = self._outputs = None
        self.deferred_checks = []
        if self._pool is None:        # re-captures reuse it: the old graph is dropped first
            self._pool = cp.cuda.MemoryPool()
            _pools.append(self._pool)
        pool, stream = self._pool, self._stream

        def record():
            cublas.prepare()                  # handle and workspace exist before capturing
            with cp.cuda.using_allocator(pool.malloc):
                stream.begin_capture()
                try:
                    outputs = self._run(self._inputs, capture=True)
                except BaseException:
                    try:          # ends the capture; fails when the step's error broke it,
                        stream.end_capture()    # which the step's own error explains
                    except Exception:
                        pass
                    raise
                graph = stream.end_capture()
            return graph, outputs

        self._graph, self._outputs = self._on_stream(record)
        self._structure = self._structure_now()
        self.captures += 1
        self.deferred_checks = [(flag, _resetting(flag, make_error))
                                for flag, make_error in self.deferred_checks]
        for flag, _ in self.deferred_checks:
            flag.fill(False)

    def _replay(self, args):
        with record_function("GraphedStep.replay"):      # (one event for minidl.profiler)
            return self._launch(args)

    def _launch(self, args):
        for static, a in zip(self._inputs, args):
            if static.data is not a.data:
                static.data[...] = a.data
        for arr, get in self._scalars.values():
            arr.fill(get())
        self._on_stream(lambda: self._graph.launch(stream=self._stream))
        backend.queue_checks(self.deferred_checks, once=True)
        return self._outputs


def _resetting(flag, make_error):
    """``make_error`` that also clears ``flag``, the flag a capture ORs a check's result into
    at every replay (``backend.check_later``): a failure is reported once."""
    def error():
        flag.fill(False)
        return make_error()
    return error


def _describe(signature):
    return ", ".join(f"{tuple(shape)} {dtype} on {device}" for shape, dtype, device in signature)
