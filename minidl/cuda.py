"""``minidl.cuda``: the GPU questions PyTorch code asks through ``torch.cuda``.

    device = "cuda" if minidl.cuda.is_available() else "cpu"

Only what minidl can answer truthfully is here: whether a GPU is usable, how many, which is
current, waiting for queued work, seeding the GPU generators, and the memory CuPy's pool holds
for arrays. Work on a GPU is placed with ``tensor.to("cuda")`` / ``model.to("cuda")``.
"""
from __future__ import annotations

from . import backend, random
from ._checks import check_int


def is_available():
    """Whether CuPy imports and at least one GPU is visible (``torch.cuda.is_available``)."""
    return backend.is_cuda_available()


def device_count():
    """The number of visible GPUs (0 without CuPy or without a GPU)."""
    return backend.cuda_device_count()


def _cupy(op):
    if not is_available():
        raise RuntimeError(f"minidl.cuda.{op}: no GPU is available (CuPy and a visible CUDA "
                           "device are needed); check minidl.cuda.is_available() first")
    return backend.cupy_module()


def current_device():
    """The index of the current GPU (CuPy's current device)."""
    return int(_cupy("current_device").cuda.Device().id)


def synchronize(device=None):
    """Wait until the work queued on ``device`` (the current GPU by default) is done, then
    raise any deferred check that failed (e.g. a label out of range in a loss)."""
    _cupy("synchronize")
    backend.synchronize("cuda" if device is None else device)


def manual_seed(seed):
    """Seed the default generator of every visible GPU (the CPU's is left as it is; use
    ``minidl.manual_seed`` for all devices)."""
    seed = check_int("minidl.cuda.manual_seed", "seed", seed, 0)
    for i in range(device_count()):
        random.default_generator(f"cuda:{i}").seed(seed)


manual_seed_all = manual_seed


def memory_allocated(device=None):
    """Bytes of GPU memory held by arrays (in use in CuPy's default memory pool)."""
    cp = _cupy("memory_allocated")
    with cp.cuda.Device(backend.get_device("cuda" if device is None else device).index):
        return int(cp.get_default_memory_pool().used_bytes())


def empty_cache():
    """Give the GPU memory CuPy's pool keeps for reuse but no array uses back to the driver."""
    _cupy("empty_cache").get_default_memory_pool().free_all_blocks()
