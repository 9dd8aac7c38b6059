"""Host memory reuse: arrays that NumPy frees stay with the process for the next ones.

Why: a training step allocates and frees the same few hundred activation-sized arrays (1-30 MB
each) every step. glibc's malloc serves such sizes with fresh ``mmap`` pages and returns them
to the system when freed (its dynamic threshold moves up only for the sizes freed so far, and
its trim threshold gives the heap's top back), so each step the kernel faults in and zeroes
those pages again: a memory pass nobody asked for, before NumPy's own. Measured on the 2-core
CPU machine (a plain training loop, a fresh process each; ``benchmarks/RESULTS.md``):
ResNet-20 at batch 128 took 12-26 thousand page faults and 500-549 ms per step, 13-36 and
485-509 ms with reuse; DenseNet-BC-100 at batch 64 3316-3331 -> 3139-3158 ms. How much a
program gains depends on its allocation history: ``train_cifar.py`` frees large arrays early
(its data pipeline), which raises glibc's threshold by itself, and gains about 1%.

What: ``mallopt`` raises the mmap threshold to glibc's ceiling (32 MiB on 64-bit systems) and
the trim threshold to twice that, so arrays below 32 MiB come from the heap and freed ones are
reused. The process keeps up to its peak of such memory instead of returning it between steps
(the peak itself does not grow: ``benchmarks/RESULTS.md`` compares RSS). Larger buffers (im2col
columns) are kept by ``kernels.pool`` instead.

On by default when minidl is imported on glibc (Linux); ``MINIDL_HOST_MEMORY_REUSE=0`` in the
environment leaves malloc alone, ``set_host_memory_reuse(False)`` restores glibc's initial
thresholds (its dynamic adjustment stays off). Elsewhere (macOS, musl) nothing changes.
"""
from __future__ import annotations

import ctypes
import os

from .._checks import check_bool

_M_TRIM_THRESHOLD = -1          # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_REUSE_BELOW = 32 << 20         # glibc's largest mmap threshold on 64-bit systems
_GLIBC_DEFAULT = 128 << 10      # glibc's initial mmap and trim thresholds

_state = {"reuse": False}


def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version        # glibc only (musl has no mallopt effect)
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return fn


def set_host_memory_reuse(enabled=True):
    """Keep freed host arrays under 32 MiB for reuse (``enabled``), or give freed memory back
    to the system as glibc does initially. Returns whether the setting took effect (False
    where malloc is not glibc's)."""
    enabled = check_bool("set_host_memory_reuse", "enabled", enabled)
    mallopt = _mallopt()
    if mallopt is None:
        return False
    mmap, trim = (_REUSE_BELOW, 2 * _REUSE_BELOW) if enabled else (_GLIBC_DEFAULT,) * 2
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
    _state["reuse"] = enabled and ok
    return ok


def host_memory_reuse():
    """Whether freed host memory is kept for reuse (``set_host_memory_reuse``)."""
    return _state["reuse"]


if os.environ.get("MINIDL_HOST_MEMORY_REUSE", "1") != "0":
    set_host_memory_reuse(True)
