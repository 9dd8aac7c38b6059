"""Host threads for the CPU kernels: a large kernel splits its work into contiguous parts and
runs them at once, one per core (``parallel(fn, n)``).

Why: NumPy runs every elementwise pass, copy and reduction on one core, and only its BLAS uses
more. On the 2-core machine of the benchmarks, ResNet-20's CPU step spent about 60% of its
time in single-core passes over memory (the convolutions' row unfolding and shifted sums,
batch norm, ReLU), with the second core idle. NumPy lets go of the GIL inside its ufunc loops,
copies, reductions and BLAS calls, so plain Python threads run those in parallel.

The BLAS: while a region runs, NumPy's BLAS is set to one thread, so that each part's GEMM
runs on its own core and the BLAS's own workers neither oversubscribe the cores nor spin after
their calls (OpenBLAS's idle workers busy-wait for a while after each call, which costs the
threads here their core). It is set back to its previous count when the region ends. The
BLAS is found among the shared libraries of the process (OpenBLAS as NumPy's wheels bundle it,
or MKL); where it cannot be set, minidl runs its kernels in one thread unless
``set_num_threads`` asks for more.

How many threads: ``get_num_threads()``; by default as many as NumPy's BLAS uses (so
``OPENBLAS_NUM_THREADS=1`` makes minidl single-threaded too), at most the cores this process
may run on. A region started while another is running (from a second user thread, or from
inside a part) runs its parts one after the other in the calling thread, so nothing ever waits
for a worker that is busy with its caller's own work.

Results do not depend on timing: the parts are fixed by n and the thread count, and every part
writes its own slice of the outputs. (With a different thread count a kernel that sums partial
results, like a weight gradient, rounds differently.)
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import queue
import threading

import numpy as np

from .._checks import check_int

_MIN_ITEMS = 1 << 16           # below this many values a part costs more than it saves

_state = {"threads": None, "workers": [], "blas": "unknown", "pid": None}
_region = threading.Lock()
_local = threading.local()


# ---------------------------------------------------------------------------------------------
# NumPy's BLAS


_BLAS_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                 ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
                 ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                 ("openblas_set_num_threads", "openblas_get_num_threads"),
                 ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"))


def _library_paths():
    """Shared libraries this process has loaded (Linux; NumPy, imported above, has loaded
    its BLAS), then the ones NumPy's wheel ships."""
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if path.startswith("/") and ".so" in path and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(np.__file__))
    for pattern in ("numpy.libs/*", "numpy/.dylibs/*", "scipy_openblas*/lib/*"):
        paths += sorted(glob.glob(os.path.join(root, pattern)))
    return [p for p in paths if "blas" in os.path.basename(p).lower()
            or "mkl" in os.path.basename(p).lower()]


def _find_blas():
    """(set, get) thread-count functions of NumPy's BLAS, or None."""
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _BLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.restype, getter.restype = None, ctypes.c_int
                setter.argtypes, getter.argtypes = [ctypes.c_int], []
                return setter, getter
    return None


def _blas():
    if _state["blas"] == "unknown":
        _state["blas"] = _find_blas()
    return _state["blas"]


class _OneBlasThread:
    """Context: NumPy's BLAS on one thread, its previous count restored on exit."""

    def __enter__(self):
        blas = _blas()
        self.saved = None
        if blas is not None:
            self.saved = blas[1]()
            if self.saved != 1:
                blas[0](1)
        return self

    def __exit__(self, *exc):
        if self.saved not in (None, 1):
            _blas()[0](self.saved)


# ---------------------------------------------------------------------------------------------
# thread count


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def get_num_threads():
    """The number of threads minidl's CPU kernels run on (see the module docstring)."""
    if _state["threads"] is None:
        blas = _blas()
        _state["threads"] = max(1, min(blas[1](), _cores())) if blas is not None else 1
    return _state["threads"]


def set_num_threads(n):
    """Run minidl's CPU kernels on ``n`` threads (1: no threads of its own). NumPy's BLAS
    thread count is left as it is outside minidl's kernels."""
    _state["threads"] = check_int("set_num_threads", "n", n, 1)


# ---------------------------------------------------------------------------------------------
# the workers


def _work(tasks):
    while True:
        job = tasks.get()
        if job is None:
            return
        fn, lo, hi, done = job
        try:
            fn(lo, hi)
            result = None
        except BaseException as e:  # noqa: BLE001  (handed to the caller, which raises it)
            result = e
        # let go of the job before reporting: an idle worker must not keep the arrays its
        # last part captured (a conv's buffers, lent by kernels.pool) alive until its next job
        job = fn = None
        done.put(result)
        done = result = None


def _workers(count):
    """``count`` worker threads (daemons, each with its own task queue), started on first use
    and again in a child process after fork (threads do not survive a fork)."""
    if _state["pid"] != os.getpid():
        _state["workers"], _state["pid"] = [], os.getpid()
    workers = _state["workers"]
    while len(workers) < count:
        tasks = queue.SimpleQueue()
        t = threading.Thread(target=_work, args=(tasks,), daemon=True,
                             name=f"minidl-kernel-{len(workers) + 1}")
        t.start()
        workers.append((t, tasks))
    return workers[:count]


def split(n, parts):
    """Boundaries of ``parts`` contiguous, nearly equal parts of range(n): a list of
    (lo, hi) pairs, the larger parts first, empty parts left out."""
    q, r = divmod(n, parts)
    out, lo = [], 0
    for k in range(parts):
        hi = lo + q + (k < r)
        if hi > lo:
            out.append((lo, hi))
        lo = hi
    return out


def parallel(fn, n, items=None):
    """Call ``fn(lo, hi)`` for contiguous parts [lo, hi) covering range(n), one part per
    thread, and return when all are done; the calling thread runs the first part. The first
    exception a part raised is raised here, after every part has finished.

    ``items`` (how many array values the whole range stands for; n when not given) decides
    whether threads pay: with fewer than about 65k values, or one thread, ``fn(0, n)`` runs
    alone. Inside another region, or while another thread's region runs, the same parts run
    one after the other in the calling thread, so results never depend on timing. While the
    parts run, NumPy's BLAS is on one thread (unless minidl itself has only one).
    """
    threads = min(get_num_threads(), n, max(1, (n if items is None else items) // _MIN_ITEMS))
    parts = split(n, threads) if threads > 1 else [(0, n)]
    if len(parts) == 1 or in_parallel_region() or not _region.acquire(blocking=False):
        # no BLAS workers left spinning against the threads
        with _OneBlasThread() if get_num_threads() > 1 else contextlib.nullcontext():
            for lo, hi in parts:
                fn(lo, hi)
        return
    try:
        _local.inside = True
        done = queue.SimpleQueue()
        with _OneBlasThread():
            for (lo, hi), (_, tasks) in zip(parts[1:], _workers(len(parts) - 1)):
                tasks.put((fn, lo, hi, done))
            errors = []
            try:
                fn(*parts[0])
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            errors += [e for e in (done.get() for _ in parts[1:]) if e is not None]
        if errors:
            raise errors[0]
    finally:
        _local.inside = False
        _region.release()


def parallel_if_host(xp, fn, n, items=None):
    """``parallel(fn, n, items)`` when ``xp`` is NumPy, one call ``fn(0, n)`` for CuPy (the
    GPU runs each call's work in parallel already)."""
    if xp is np:
        parallel(fn, n, items)
    else:
        fn(0, n)


def summed(fn, n, items=None):
    """The sum of ``fn(lo, hi)`` (arrays of one shape, each new) over the parts of range(n)
    that ``parallel`` runs, added in the parts' order, so the rounding depends only on the
    sizes and the thread count. For reductions over a long range (weight gradients)."""
    partial = {}

    def part(lo, hi):
        partial[lo] = fn(lo, hi)

    parallel(part, n, items)
    keys = sorted(partial)
    total = partial[keys[0]]
    for k in keys[1:]:
        total += partial[k]
    return total


def in_parallel_region():
    """Whether the calling thread is inside a ``parallel`` region (tests and asserts)."""
    return getattr(_local, "inside", False)


def view(a, shape):
    """``a.reshape(shape)`` that must be a view of a's memory (a part's slice of a shared
    buffer, written through): raises instead of quietly writing into a copy."""
    r = a.reshape(shape)
    if r.size and r.__array_interface__["data"][0] != a.__array_interface__["data"][0]:
        raise RuntimeError(f"threads.view: shape {shape} of a {a.shape} array with strides "
                           f"{a.strides} is not a view")
    return r


def ufunc(f, *args, out=None):
    """``f(*args)`` for a NumPy ufunc over host arrays of one shape (Python numbers may stand
    for operands), in parts along the first axis on the threads; the result is ``out`` or a
    new array laid out like the first array operand (channel-major memory stays so); an
    array even for 0-d operands (where NumPy's ufuncs give scalars)."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    first = arrays[0] if arrays else None
    if first is None or first.ndim == 0 or any(a.shape != first.shape for a in arrays):
        r = f(*args, out=out)
        return np.asarray(r) if isinstance(r, np.generic) else r    # 0-d stays an array
    if out is None:
        out = np.empty_like(first, dtype=np.result_type(*args))

    def part(lo, hi):
        f(*(a[lo:hi] if isinstance(a, np.ndarray) else a for a in args), out=out[lo:hi])

    parallel(part, first.shape[0], items=first.size)
    return out
