"""Host memory reuse (``minidl.kernels.host_memory``): glibc's malloc keeps freed arrays
under 32 MiB for the next ones instead of faulting fresh pages in every training step."""
import os
import subprocess
import sys

import pytest

import minidl
from minidl.kernels import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
glibc = pytest.mark.skipif(host_memory._mallopt() is None, reason="malloc is not glibc's")

# pages faulted in while an 8 MiB array is made and freed 20 times, after one warm-up
_FAULTS = """
import resource, sys
import numpy as np
import minidl
if len(sys.argv) > 1:
    minidl.set_host_memory_reuse(sys.argv[1] == "on")
a = np.ones(1 << 21, np.float32); del a
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(1 << 21, np.float32); del a
print(minidl.host_memory_reuse(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _run(*args, env=None):
    out = subprocess.run([sys.executable, "-c", _FAULTS, *args], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, **(env or {})}, check=True)
    reuse, faults = out.stdout.split()
    return reuse == "True", int(faults)


@glibc
def test_freed_arrays_are_reused_without_page_faults():
    """On: the freed array's pages serve the next one (no faults). Off (glibc's initial
    thresholds): every 8 MiB array is a fresh mapping, 2048 faults of 4 KiB pages or a few
    of huge pages each time."""
    on, off = _run("on"), _run("off")
    assert on[0] and not off[0]
    assert on[1] <= 10 and off[1] >= 40, (on, off)


@glibc
def test_on_by_default_and_off_by_environment():
    assert _run()[0]
    assert not _run(env={"MINIDL_HOST_MEMORY_REUSE": "0"})[0]


def test_thresholds_set_and_restored(monkeypatch):
    calls = []

    def mallopt(param, value):
        calls.append((param, value))
        return 1
    monkeypatch.setattr(host_memory, "_mallopt", lambda: mallopt)
    monkeypatch.setitem(host_memory._state, "reuse", False)
    assert minidl.set_host_memory_reuse(True) and minidl.host_memory_reuse()
    assert calls == [(-3, 32 << 20), (-1, 64 << 20)]          # M_MMAP_, M_TRIM_THRESHOLD
    calls.clear()
    assert minidl.set_host_memory_reuse(False) and not minidl.host_memory_reuse()
    assert calls == [(-3, 128 << 10), (-1, 128 << 10)]


def test_without_glibc_nothing_changes(monkeypatch):
    monkeypatch.setattr(host_memory, "_mallopt", lambda: None)
    monkeypatch.setitem(host_memory._state, "reuse", False)
    assert minidl.set_host_memory_reuse(True) is False
    assert not minidl.host_memory_reuse()


def test_bad_argument_is_named():
    with pytest.raises(TypeError, match="set_host_memory_reuse: 'enabled' must be a bool, "
                                        "got int 1"):
        minidl.set_host_memory_reuse(1)
