"""Where a training step spends its time: every op's forward and backward, timed and tallied.

    from minidl import profiler
    with profiler.profile() as prof:
        for x, y in batches:
            train_step(x, y)
    print(prof.table(row_limit=12))             # the ops that took longest, by self time
    prof.export_chrome_trace("trace.json")      # a timeline for chrome://tracing or Perfetto

While a ``profile`` is open, the engine times (on the thread that opened it):

- each ``Function``'s forward (``"forward"``) and backward (``"backward"``), named by its class
  (``Conv2d``, ``BatchNorm``, ``CrossEntropy``...), so ``F.conv2d`` and ``nn.Conv2d`` both
  land on ``Conv2d``;
- each whole backward pass (``autograd.backward``, a ``"range"``): its self time is the engine's
  own work (ordering the graph, summing gradients, hooks), its ops are counted inside it;
- each optimizer step (``SGD.step``...) and CUDA-graph replay (``GraphedStep.replay``);
- every ``nn.Module`` call (``"module"``, named by class) when ``record_modules=True``;
- any block you name with ``profiler.record_function("name")`` (``"range"``).

With ``record_shapes=True`` each op and module event also keeps the shapes of its inputs (a
backward: its forward's inputs, so the two rows of a layer match), and the table has one row
per op, phase and shapes: which convolution layer of a network takes the time, not only that
convolutions do.

Times nest: an event's *total* time runs from its start to its end; its *self* time is the
total less the totals of the events inside it. The self times of all events and the time
outside them add up to the wall time of the profile (``prof.wall_ms``), so the table shows
where every millisecond went, the Python between ops included (its last line). A name whose
events nest in one another (a ``Sequential`` inside a ``Sequential``) counts the inner one's
time in both totals; self times never count anything twice.

On a GPU the host times say how long Python took to issue the work; with ``use_cuda=True``
(the default when CuPy is present) a CUDA event pair also brackets every event on the current
stream, and ``cuda self``/``cuda total`` give the time the GPU spent between them (read once
when the profile closes, so the profiled code is not slowed by waiting). Those device times
measure the GPU's timeline: when the host issues work more slowly than the GPU runs it (small
kernels, a launch-bound step), the GPU idles between them and the device times approach the
host times. Inside a CUDA-graph capture no events are recorded (the replay is one event).

Profiling costs about a microsecond per event on the host (two clock reads and a list
append), a few more with CUDA events; nothing at all when no profile is open.
"""
from __future__ import annotations

import functools
import json
import threading
import time

from . import autograd, backend
from ._checks import check_bool, check_int
from .serialization import atomic_write

__all__ = ["profile", "record_function", "EventAverage"]


class _Recorder:
    """What ``autograd.profiler_hook`` points at while a profile is open: ``begin`` opens an
    event and returns its depth, ``end(depth)`` closes it (and any event left open inside it,
    e.g. by an exception)."""

    def __init__(self, use_cuda, record_modules, record_shapes):
        self.thread = threading.get_ident()
        self.use_cuda, self.record_modules = use_cuda, record_modules
        self.record_shapes = record_shapes
        self.open = []          # [name, kind, t0, event0, children, shapes] of open events
        self.done = []          # closed events, in the order they closed (children first)

    def _event(self):
        if not self.use_cuda or backend.capturing():
            return None
        cp = backend.cupy_module()
        ev = cp.cuda.Event()
        ev.record(cp.cuda.get_current_stream())
        return ev

    def begin(self, name, kind, inputs=None):
        if threading.get_ident() != self.thread:
            return 0
        shapes = None
        if self.record_shapes and inputs is not None:
            shapes = tuple(tuple(a.shape) for a in inputs if hasattr(a, "shape"))
        self.open.append([name, kind, time.perf_counter(), self._event(), [], shapes])
        return len(self.open)

    def end(self, depth):
        if not depth:
            return
        t1 = time.perf_counter()
        ev1 = self._event() if self.open and self.open[-1][3] is not None else None
        while len(self.open) >= depth:
            name, kind, t0, ev0, children, shapes = self.open.pop()
            record = _Event(name, kind, t0, t1, ev0, ev1, children, shapes)
            self.done.append(record)
            if self.open:
                self.open[-1][4].append(record)


class _Event:
    """A closed event: its host interval, the events directly inside it, CUDA times."""
    __slots__ = ("name", "kind", "t0", "t1", "self_s", "ev0", "ev1", "children", "cuda_ms",
                 "shapes")

    def __init__(self, name, kind, t0, t1, ev0, ev1, children, shapes=None):
        self.name, self.kind, self.t0, self.t1 = name, kind, t0, t1
        self.self_s = (t1 - t0) - sum(c.t1 - c.t0 for c in children)
        self.ev0, self.ev1, self.children, self.cuda_ms = ev0, ev1, children, None
        self.shapes = shapes


class EventAverage:
    """One row of ``profile.key_averages()``: every event of one name and kind, summed.

    Attributes: ``name``, ``kind`` (forward, backward, module, range), ``shapes`` (the input
    shapes with ``record_shapes``, else None), ``calls``, ``self_ms`` and ``total_ms``
    (host), ``cuda_self_ms`` and ``cuda_total_ms`` (None without CUDA events), and
    ``mean_us`` (total per call)."""

    def __init__(self, name, kind, shapes=None):
        self.name, self.kind, self.shapes, self.calls = name, kind, shapes, 0
        self.self_ms = self.total_ms = 0.0
        self.cuda_self_ms = self.cuda_total_ms = None

    @property
    def mean_us(self):
        return 1000.0 * self.total_ms / self.calls if self.calls else 0.0

    def __repr__(self):
        return (f"EventAverage({self.name!r}, {self.kind!r}, calls={self.calls}, "
                f"self_ms={self.self_ms:.3f}, total_ms={self.total_ms:.3f})")


_SORT_KEYS = ("self", "total", "calls", "mean", "cuda_self", "cuda_total", "name")


class profile:
    """Record the time of every op (and range) run inside the ``with`` block.

    Args:
        use_cuda: also bracket every event with CUDA events for device times (None: when
            CuPy is present and a GPU is available).
        record_modules: also record every ``nn.Module`` call (by class name).
        record_shapes: keep each op's input shapes; the averages and the table then have one
            row per name, kind and shapes.

    After the block: ``key_averages()``, ``table()``, ``export_chrome_trace(path)``,
    ``events()`` and ``wall_ms``. Profiles do not nest (one at a time per process).
    """

    def __init__(self, use_cuda=None, record_modules=False, record_shapes=False):
        op = "profile"
        if use_cuda is None:
            use_cuda = backend.is_cuda_available()
        self.use_cuda = check_bool(op, "use_cuda", use_cuda)
        if self.use_cuda and not backend.is_cuda_available():
            raise RuntimeError(f"{op}: use_cuda=True needs CuPy and a CUDA GPU; none is "
                               "available (pass use_cuda=False, or None to decide by itself)")
        self.record_modules = check_bool(op, "record_modules", record_modules)
        self.record_shapes = check_bool(op, "record_shapes", record_shapes)
        self._recorder = None
        self._events = None
        self.wall_ms = None

    def __enter__(self):
        if autograd.profiler_hook is not None:
            raise RuntimeError("profile: another profile is already open; profiles do not "
                               "nest (close the outer one first)")
        if self._events is not None or self._recorder is not None:
            raise RuntimeError("profile: this profile was already used; make a new one for "
                               "each block")
        self._recorder = _Recorder(self.use_cuda, self.record_modules, self.record_shapes)
        self._t0 = time.perf_counter()
        autograd.profiler_hook = self._recorder
        return self

    def __exit__(self, *exc):
        rec = self._recorder
        autograd.profiler_hook = None
        t1 = time.perf_counter()
        rec.end(1 if rec.open else 0)               # close what an exception left open
        self.wall_ms = 1000.0 * (t1 - self._t0)
        if rec.use_cuda:
            _read_cuda_times(rec.done)
        self._events = rec.done
        return False

    def _closed(self, op):
        if self._events is None:
            raise RuntimeError(f"profile.{op}: the profile has not run yet; call it after the "
                               "`with profile() as prof:` block")
        return self._events

    def events(self):
        """Every recorded event as a dict (name, kind, start_ms from the profile's start,
        total_ms, self_ms, cuda_ms, shapes), in order of start."""
        evs = sorted(self._closed("events"), key=lambda e: e.t0)
        return [dict(name=e.name, kind=e.kind, start_ms=1000.0 * (e.t0 - self._t0),
                     total_ms=1000.0 * (e.t1 - e.t0), self_ms=1000.0 * e.self_s,
                     cuda_ms=e.cuda_ms, shapes=e.shapes) for e in evs]

    def key_averages(self):
        """One ``EventAverage`` per (name, kind), and per input shapes with
        ``record_shapes``, ordered by self time, largest first."""
        rows = {}
        for e in self._closed("key_averages"):
            row = rows.get((e.name, e.kind, e.shapes))
            if row is None:
                row = rows[(e.name, e.kind, e.shapes)] = EventAverage(e.name, e.kind, e.shapes)
            row.calls += 1
            row.self_ms += 1000.0 * e.self_s
            row.total_ms += 1000.0 * (e.t1 - e.t0)
            if e.cuda_ms is not None:
                inner = sum(c.cuda_ms for c in e.children if c.cuda_ms is not None)
                row.cuda_total_ms = (row.cuda_total_ms or 0.0) + e.cuda_ms
                row.cuda_self_ms = (row.cuda_self_ms or 0.0) + e.cuda_ms - inner
        return sorted(rows.values(), key=lambda r: -r.self_ms)

    def table(self, sort_by="self", row_limit=20):
        """The key averages as a text table, sorted by ``sort_by`` (self, total, calls, mean,
        cuda_self, cuda_total or name), at most ``row_limit`` rows (None: all), then a line
        for the time outside every event and the profile's wall time."""
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"profile.table: 'sort_by' must be one of {', '.join(_SORT_KEYS)}, "
                             f"got {sort_by!r}")
        if row_limit is not None:
            row_limit = check_int("profile.table", "row_limit", row_limit, 1)
        rows = self.key_averages()
        cuda = any(r.cuda_total_ms is not None for r in rows)
        if sort_by.startswith("cuda") and not cuda:
            raise ValueError(f"profile.table: sort_by={sort_by!r} needs CUDA times; this "
                             "profile has none (use_cuda=False, or no GPU)")
        key = {"self": lambda r: -r.self_ms, "total": lambda r: -r.total_ms,
               "calls": lambda r: -r.calls, "mean": lambda r: -r.mean_us,
               "cuda_self": lambda r: -(r.cuda_self_ms or 0.0),
               "cuda_total": lambda r: -(r.cuda_total_ms or 0.0),
               "name": lambda r: (r.name, r.kind)}[sort_by]
        rows = sorted(rows, key=key)
        shown = rows if row_limit is None else rows[:row_limit]
        wall = self.wall_ms or 0.0
        width = max([len(r.name) for r in shown] + [24])
        head = (f"{'name':<{width}}  {'kind':<8}  {'calls':>6}  {'self ms':>10}  {'self %':>6}  "
                f"{'total ms':>10}  {'mean us':>10}")
        if cuda:
            head += f"  {'cuda self ms':>12}  {'cuda total ms':>13}"
        if self.record_shapes:
            head += "  input shapes"
        lines = [head, "-" * len(head)]
        for r in shown:
            pct = 100.0 * r.self_ms / wall if wall else 0.0
            line = (f"{r.name:<{width}}  {r.kind:<8}  {r.calls:>6}  {r.self_ms:>10.3f}  "
                    f"{pct:>5.1f}%  {r.total_ms:>10.3f}  {r.mean_us:>10.1f}")
            if cuda:
                line += (f"  {'':>12}  {'':>13}" if r.cuda_total_ms is None else
                         f"  {r.cuda_self_ms:>12.3f}  {r.cuda_total_ms:>13.3f}")
            if self.record_shapes and r.shapes is not None:
                line += "  " + ", ".join(str(list(s)) for s in r.shapes)
            lines.append(line)
        if len(shown) < len(rows):
            rest = sum(r.self_ms for r in rows[len(shown):])
            lines.append(f"({len(rows) - len(shown)} more rows: {rest:.3f} ms of self time)")
        outside = wall - sum(r.self_ms for r in rows)
        lines.append(f"outside every event (Python between ops): {outside:.3f} ms "
                     f"({100.0 * outside / wall if wall else 0.0:.1f}%); wall time "
                     f"{wall:.3f} ms")
        return "\n".join(lines)

    def export_chrome_trace(self, path):
        """Write the events as a Chrome trace (JSON; open it in chrome://tracing or
        https://ui.perfetto.dev), atomically. Host events are thread 0, and with CUDA times
        the device's view of each op (placed at its host start) thread 1."""
        events = self.events()
        trace = []
        for e in events:
            trace.append({"name": e["name"], "cat": e["kind"], "ph": "X", "pid": 0, "tid": 0,
                          "ts": 1000.0 * e["start_ms"], "dur": 1000.0 * e["total_ms"]})
            if e["shapes"] is not None:
                trace[-1]["args"] = {"input shapes": [list(s) for s in e["shapes"]]}
            if e["cuda_ms"] is not None and e["kind"] in ("forward", "backward"):
                trace.append({"name": e["name"], "cat": e["kind"] + " (cuda)", "ph": "X",
                              "pid": 0, "tid": 1, "ts": 1000.0 * e["start_ms"],
                              "dur": 1000.0 * e["cuda_ms"]})
        text = json.dumps({"traceEvents": trace, "displayTimeUnit": "ms"})
        atomic_write(path, lambda f: f.write(text.encode()))


def _read_cuda_times(events):
    """Fill ``cuda_ms`` of every event bracketed by CUDA events (each end event is waited
    for: the host waits here, once the profile is closed, not while it records)."""
    timed = [e for e in events if e.ev0 is not None and e.ev1 is not None]
    if not timed:
        return
    cp = backend.cupy_module()
    for e in timed:
        e.ev1.synchronize()
        e.cuda_ms = float(cp.cuda.get_elapsed_time(e.ev0, e.ev1))


class record_function:
    """Time the block (or, as a decorator, every call of the function) as an event named
    ``name`` of kind ``"range"`` in the open profile; nothing when none is open.

        with profiler.record_function("data"):
            x, y = next(batches)
    """

    def __init__(self, name):
        if not isinstance(name, str) or not name:
            raise TypeError(f"record_function: 'name' must be a non-empty str, got {name!r}")
        self.name = name
        self._depth = []

    def __enter__(self):
        rec = autograd.profiler_hook
        self._depth.append((rec, rec.begin(self.name, "range") if rec is not None else 0))
        return self

    def __exit__(self, *exc):
        rec, depth = self._depth.pop()
        if rec is not None and rec is autograd.profiler_hook:
            rec.end(depth)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with record_function(self.name):
                return fn(*args, **kwargs)
        return wrapped
