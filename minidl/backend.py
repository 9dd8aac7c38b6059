"""NumPy or CuPy: the one module that decides, and the only place that imports CuPy.

Every op in minidl is written once against ``xp`` (the array module of its input), so the same
code runs on NumPy arrays (device ``"cpu"``) and CuPy arrays (device ``"cuda"`` / ``"cuda:N"``).
CuPy is optional and imported lazily, the first time a CUDA device is asked for or a CuPy array
is seen; a machine without it never imports it.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_bool

_cupy = None          # the cupy module once imported successfully
_cupy_error = None    # why importing it failed, if it did

_INSTALL_HINT = (
    "install the CUDA extra that matches your toolkit: pip install 'minidl[cuda12]' "
    "(CUDA 12.x) or pip install 'minidl[cuda13]' (CUDA 13.x)")


def _try_import_cupy():
    """Import CuPy once; return the module or None. Never raises."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy  # noqa: PLC0415  (lazy by design)
            _cupy = cupy
        except Exception as exc:  # ImportError, or a broken CUDA install
            _cupy_error = exc
    return _cupy


def cupy_module():
    """Return the cupy module, or raise a RuntimeError that says how to install it."""
    cp = _try_import_cupy()
    if cp is None:
        raise RuntimeError(
            f"device 'cuda' needs CuPy, which could not be imported ({_cupy_error!r}); "
            + _INSTALL_HINT)
    return cp


def cuda_device_count():
    """Number of visible CUDA devices (0 without CuPy or without a GPU)."""
    cp = _try_import_cupy()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def is_cuda_available():
    """True when CuPy imports and at least one GPU is visible."""
    return cuda_device_count() > 0


class Device:
    """A place where arrays live: ``Device("cpu")``, ``Device("cuda")``, ``Device("cuda:1")``.

    Compares equal to its string form, so ``t.device == "cpu"`` works as users expect.
    """

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(
                f"device: expected a string such as 'cpu', 'cuda' or 'cuda:0' or a Device, "
                f"got {type(spec).__name__} {spec!r}")
        text = spec.strip().lower()
        if text == "cpu":
            self.type, self.index = "cpu", None
            return
        if text == "cuda":
            self.type, self.index = "cuda", 0
            return
        if text.startswith("cuda:") and text[5:].isdigit():
            self.type, self.index = "cuda", int(text[5:])
            return
        raise ValueError(
            f"device: expected 'cpu', 'cuda' or 'cuda:N' (N a GPU index), got {spec!r}")

    def __str__(self):
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self):
        return f"device('{self}')"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = Device(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, Device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))


CPU = Device("cpu")


def get_device(device):
    """Parse ``device`` (None means cpu) and make sure it can be used on this machine.

    Raises:
        ValueError: unknown device string.
        RuntimeError: a CUDA device without CuPy, without a GPU, or with a bad index.
    """
    dev = CPU if device is None else Device(device)
    if dev.type == "cuda":
        cupy_module()
        count = cuda_device_count()
        if count == 0:
            raise RuntimeError(
                f"device '{dev}': CuPy is installed but no CUDA GPU is visible; "
                "use device='cpu', or run on a machine with an NVIDIA GPU and driver")
        if dev.index >= count:
            raise RuntimeError(
                f"device '{dev}': only {count} CUDA device(s) visible (indices 0..{count - 1})")
    return dev


def is_array(x):
    """Whether ``x`` is a NumPy or a CuPy array (not a Tensor, list or scalar)."""
    return isinstance(x, np.ndarray) or _is_cupy_array(x)


def _is_cupy_array(x):
    cp = _cupy
    if cp is None:
        # A CuPy array can only exist if cupy was imported by someone; look it up cheaply.
        if type(x).__module__.startswith("cupy"):
            cp = _try_import_cupy()
        else:
            return False
    return cp is not None and isinstance(x, cp.ndarray)


def get_array_module(x):
    """Return ``cupy`` for CuPy arrays, ``numpy`` for anything else (arrays, scalars)."""
    if type(x) is np.ndarray:
        return np
    return _cupy if _is_cupy_array(x) else np


xp_of = get_array_module


def device_of(x):
    """The Device of an array: cpu for NumPy arrays, cuda:N for CuPy arrays."""
    if _is_cupy_array(x):
        return Device(f"cuda:{x.device.id}")
    return CPU


def to_device(x, device):
    """Return array ``x`` on ``device`` (a copy only when it has to move)."""
    dev = get_device(device)
    if dev.type == "cpu":
        return x.get() if _is_cupy_array(x) else np.asarray(x)
    cp = cupy_module()
    with cp.cuda.Device(dev.index):
        if _is_cupy_array(x) and x.device.id == dev.index:
            return x
        return cp.asarray(x)


def array_module_for(device):
    """The array module (numpy or cupy) that holds arrays on ``device``."""
    return np if get_device(device).type == "cpu" else cupy_module()


def synchronize(device=None):
    """Wait for all queued work on a CUDA device (no-op on cpu), then raise any deferred
    check that failed (``check_later``)."""
    refuse_in_capture("synchronize")
    dev = get_device(device)
    if dev.type == "cuda":
        cp = cupy_module()
        with cp.cuda.Device(dev.index):
            cp.cuda.get_current_stream().synchronize()
    check_deferred()


def as_numpy(x):
    """The array as a NumPy array: CuPy arrays are copied to the host, NumPy arrays are
    returned as they are (not copied). Raises any failed deferred check first."""
    if _is_cupy_array(x):
        refuse_in_capture("reading a GPU array on the host")
    check_deferred()
    return x.get() if _is_cupy_array(x) else np.asarray(x)


# ---------------------------------------------------------------------------------------------
# TF32 matrix multiplies (GPU, opt-in)

_tf32 = False


def set_tf32(enabled):
    """Let float32 matrix multiplies on the GPU (convolutions' GEMMs, linear layers) run on
    TF32 tensor cores: inputs rounded to a 10-bit mantissa, products accumulated in float32.
    Several times the float32 GEMM throughput on Ampere and newer GPUs (about 400 against 52
    TFLOP/s on an H100), at a relative error near 1e-3 per product instead of 1e-7. Off by
    default; float64 and the CPU are never affected. Turning it on needs CuPy and a GPU.
    """
    global _tf32
    enabled = check_bool("set_tf32", "enabled", enabled)
    if enabled and not is_cuda_available():
        raise RuntimeError("set_tf32: TF32 is a GPU matrix-multiply mode; it needs CuPy and a "
                           "CUDA GPU (this machine has none usable)")
    if enabled or (_cupy is not None and is_cuda_available()):
        linalg = cupy_module()._core._routines_linalg
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled
                                else linalg.COMPUTE_TYPE_DEFAULT)
    _tf32 = enabled


def tf32_enabled():
    """Whether ``set_tf32(True)`` is in effect."""
    return _tf32


# ---------------------------------------------------------------------------------------------
# CUDA-graph capture (minidl.cuda_graph sets these while it runs a step)

_graph = None           # the GraphedStep whose step is running (warm-up or capture), if any
_capturing = False      # True while that step is being captured into a CUDA graph


def capturing():
    """Whether a CUDA graph is being captured right now (``minidl.cuda_graph``): device work
    is recorded, not run, and nothing may wait for the device."""
    return _capturing


def active_graph():
    """The ``minidl.cuda_graph.GraphedStep`` whose step is running, or None."""
    return _graph


def refuse_in_capture(what):
    """Raise a clear error if a CUDA graph is being captured: ``what`` needs the host to wait
    for the device (or draws random numbers), which a replayed graph cannot do."""
    if _capturing:
        raise RuntimeError(
            f"{what} inside a step being captured as a CUDA graph (minidl.cuda_graph): a "
            "graph replays recorded GPU work only, so nothing in the step may read GPU values "
            "on the host (item(), numpy(), printing, Python branches on tensor values) or draw "
            "random numbers; move it out of the graphed function")


# ---------------------------------------------------------------------------------------------
# checks of device data, deferred to the next synchronization

_deferred = []          # [(flag, make_error)] not yet read back
MAX_DEFERRED = 64       # past this many, read them back at once (bounds memory and delay)


def _defers(flag):
    return _is_cupy_array(flag)


def check_later(flag, make_error):
    """Raise ``make_error()`` if the boolean scalar array ``flag`` is true.

    Checking data that lives on a GPU (labels in range, say) means reading a result back to the
    host, which waits for every kernel queued before it: one such wait per training step stops
    the host from queueing the next step's work while the GPU runs this one. So on a GPU the
    flag is only queued here and read back at the next point where the host waits anyway
    (``Tensor.item()``, ``.numpy()``, ``backend.as_numpy``, ``minidl.synchronize``), where the
    error is raised; after ``MAX_DEFERRED`` pending flags they are read at once. NumPy flags
    are checked immediately. ``make_error`` runs only on failure, so it may read device data
    to describe it.

    Returns True when the check was deferred: the caller must then keep its computation safe
    on bad data (clamp indices, say) until the error surfaces.
    """
    if not _defers(flag):
        if bool(flag):
            raise make_error()
        return False
    if _capturing:
        # a replay rewrites ``flag``; a replay can come before the next read, so the graph ORs
        # it into a flag of its own that only a failed read resets (``GraphedStep``)
        xp = xp_of(flag)
        sticky = xp.empty((), bool)
        xp.logical_or(sticky, flag, out=sticky)
        _graph.deferred_checks.append((sticky, make_error))
        return True
    queue_checks([(flag, make_error)])
    return True


def queue_checks(checks, once=False):
    """Queue ``[(flag, make_error)]`` pairs as ``check_later`` does; with ``once``, skip the
    flag arrays already pending (a replayed CUDA graph queues its checks after every replay)."""
    if once:
        pending = {id(f) for f, _ in _deferred}
        checks = [c for c in checks if id(c[0]) not in pending]
    _deferred.extend(checks)
    if len(_deferred) >= MAX_DEFERRED:
        check_deferred()


def _read_flags(flags):
    """The values of boolean scalar arrays as a list of Python bools: the device flags
    gathered into one array per device and copied back at once (one wait for each device,
    not one per flag)."""
    values = [None] * len(flags)
    groups = {}
    for i, f in enumerate(flags):
        if _is_cupy_array(f):
            groups.setdefault(f.device.id, []).append(i)
        else:
            values[i] = bool(f)
    for dev, idx in groups.items():
        cp = cupy_module()
        with cp.cuda.Device(dev):
            joined = cp.concatenate([flags[i].reshape(1).astype(bool, copy=False)
                                     for i in idx])
            host = joined.get()
        for i, v in zip(idx, host):
            values[i] = bool(v)
    return values


def check_deferred():
    """Read back the pending ``check_later`` flags (together, in one transfer per device) and
    raise the first failure's error; the pending list is emptied either way."""
    if not _deferred:
        return
    pending = list(_deferred)
    _deferred.clear()
    for (flag, make_error), failed in zip(pending, _read_flags([f for f, _ in pending])):
        if failed:
            error = make_error()
            error.args = (f"{error} (found on the GPU after the call had returned: checks of "
                          "GPU data are read back at the next synchronization)",)
            raise error


def scatter_add(target, index, values):
    """In place: ``target[index] += values``, adding repeatedly where ``index`` repeats.

    NumPy spells this ``np.add.at``; CuPy ``cupyx.scatter_add``.
    """
    if _is_cupy_array(target):
        import cupyx  # noqa: PLC0415
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


_erf_host = np.frompyfunc(math.erf, 1, 1)
_erfc_host = np.frompyfunc(math.erfc, 1, 1)


def erf(x):
    """The error function, elementwise, to full double precision on either device.

    NumPy has no erf of its own, so the CPU path applies ``math.erf`` per element (exact, but
    about 100 ns per element); CuPy has ``cupyx.scipy.special.erf``.
    """
    if _is_cupy_array(x):
        import cupyx.scipy.special  # noqa: PLC0415
        return cupyx.scipy.special.erf(x)
    return np.asarray(_erf_host(x)).astype(x.dtype)   # a 0-d x gives a Python float


# erfc(z) ~ t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0: relative error below 1.2e-7 for
# every z (Press et al., Numerical Recipes, 2nd ed., Sec. 6.2, a Chebyshev fit); P's
# coefficients, constant term first
_ERFC_FIT = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
             -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF (exact GELU's gate).

    float64 and every GPU array: erfc(-x / sqrt 2) / 2 (to full precision, in the left tail
    too). float32/float16 on the host: ``normal_cdf_fit``, 8x faster than ``math.erf`` per
    element, with an error at float32 rounding's level.
    """
    if _is_cupy_array(x):
        import cupyx.scipy.special  # noqa: PLC0415
        return 0.5 * cupyx.scipy.special.erfc(x * (-1.0 / math.sqrt(2.0)))
    if x.dtype == np.float64:       # erfc, not 1 + erf: accurate in the left tail too
        return 0.5 * np.asarray(_erfc_host(x * (-1.0 / math.sqrt(2.0)))).astype(x.dtype)
    flat = x.reshape(-1)                                 # arrays, not scalars, for out=
    out = np.empty_like(flat)
    normal_cdf_fit(flat, out, np.empty_like(flat), np.empty_like(flat))
    return out.reshape(x.shape)


def normal_cdf_fit(x, out, t, z2):
    """Phi(x) into ``out`` for a 1-D float32/float16 host array, in its dtype, in place in the
    scratch arrays ``t`` and ``z2`` (x's size each): Phi(-|x|) = erfc(|x| / sqrt 2) / 2 by the
    fit above (about 25 passes; error 1.2e-6 relative for |x| <= 3, 2e-7 absolute everywhere,
    about torch's own), then Phi(x) = p + [x > 0] (1 - 2p), exact where x <= 0. Callers run
    it on blocks small enough for the cache (``F.gelu``)."""
    f = x.dtype.type
    np.abs(x, out=t)
    t *= f(0.5 / math.sqrt(2.0))
    np.multiply(t, t, out=z2)
    z2 *= f(4.0)                                         # (|x| / sqrt 2)^2
    t += f(1.0)
    np.reciprocal(t, out=t)
    p = np.multiply(t, f(_ERFC_FIT[-1]), out=out)
    for c in _ERFC_FIT[-2:0:-1]:                         # Horner, in place
        p += f(c)
        p *= t
    p += f(_ERFC_FIT[0])
    p -= z2
    np.exp(p, out=p)
    p *= t
    p *= f(0.5)                                          # p = Phi(-|x|)
    np.greater(x, 0, out=z2)                             # [x > 0]
    np.multiply(p, f(-2.0), out=t)
    t += f(1.0)
    t *= z2
    p += t
