"""Check hand-written CUDA kernels on a machine without a GPU.

Two tools for the ``RawModule`` sources in ``minidl/kernels``:

- ``nvcc_ptx(source, names)``: compile the source for the H100 (sm_90) to PTX with nvcc, forcing
  every template instantiation in ``names``; catches what the GPU's compiler would refuse.
- ``HostModule(source, names)``: compile the same source with the host C++ compiler behind a
  small shim and load it with ctypes. Its ``get_function(name)`` returns a callable with
  CuPy's launch signature ``kernel(grid, block, args)`` that runs the kernel on the host over
  NumPy arrays, the CUDA way: the blocks of the 1-D grid one after another, the threads of a
  block as real threads (``threadIdx`` thread-local, ``__shared__`` arrays shared by them,
  ``__syncthreads()`` a barrier). So it checks index arithmetic, block reductions through
  shared memory and their barriers, and the argument list the Python side passes (count, order
  and C types: arrays and NumPy scalars only, as CuPy needs; a plain Python number is refused).
  Blocks are emulated with at most ``max_threads`` threads (``blockDim.x`` says how many), so
  kernels must not assume the block size they are launched with; a grid-stride kernel (one
  whose body reads ``gridDim``) runs as a single block. Warp shuffles, atomics and
  2-D/3-D launches are outside what it runs.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

_SHIM = r"""
#include <math.h>
#include <pthread.h>
#include <thread>
#include <vector>
struct minidl_dim3 { unsigned int x, y, z; };
static minidl_dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static thread_local minidl_dim3 threadIdx = {0, 0, 0};
static pthread_barrier_t minidl_barrier;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() pthread_barrier_wait(&minidl_barrier)
"""

_LAUNCHER = r"""
extern "C" void minidl_launch_{i}(unsigned int grid, unsigned int block, {params}) {{
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned int minidl_b = 0; minidl_b < grid; ++minidl_b) {{
        blockIdx.x = minidl_b;
        pthread_barrier_init(&minidl_barrier, nullptr, block);
        std::vector<std::thread> minidl_threads;
        for (unsigned int minidl_t = 0; minidl_t < block; ++minidl_t)
            minidl_threads.emplace_back([=]() {{ threadIdx.x = minidl_t; {name}({args}); }});
        for (auto& th : minidl_threads) th.join();
        pthread_barrier_destroy(&minidl_barrier);
    }}
}}
"""

_SCALARS = {"int": np.dtype(np.int32), "long long": np.dtype(np.int64),
            "unsigned int": np.dtype(np.uint32), "unsigned long long": np.dtype(np.uint64),
            "float": np.dtype(np.float32), "double": np.dtype(np.float64)}
_CTYPES = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
           np.dtype(np.uint32): ctypes.c_uint32, np.dtype(np.uint64): ctypes.c_uint64,
           np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


class CompileError(RuntimeError):
    pass


def _compile(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{cmd[0]} failed:\n{done.stderr}")


def host_compiler():
    return shutil.which("g++") or shutil.which("c++")


def _parameters(source, name):
    """[(declaration with T substituted, is_pointer, dtype, parameter name)] of the
    ``__global__`` function ``name`` (``base<T>``) in ``source``."""
    base, _, targ = name.partition("<")
    targ = targ.rstrip(">").strip()
    m = re.search(r"__global__\s+void\s+" + re.escape(base) + r"\s*\(([^)]*)\)", source)
    if m is None:
        raise KeyError(f"no __global__ function {base} in the source")
    out = []
    for param in m.group(1).split(","):
        words = [targ if w == "T" else w for w in param.replace("*", " * ").split()]
        pointer = "*" in words
        ctype = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__", "*"))
        if ctype not in _SCALARS:
            raise ValueError(f"{name}: parameter {param.strip()!r} has a type the emulator "
                             "does not know")
        out.append((" ".join(words), pointer, _SCALARS[ctype], words[-1]))
    return out


def kernel_signature(source, name):
    """For each parameter of kernel ``name``: ``(is_pointer, dtype)``, the dtype being the
    scalar's or the pointed-to element's, with template parameter ``T`` replaced by the type
    between the name's angle brackets."""
    return [(pointer, dtype) for _, pointer, dtype, _ in _parameters(source, name)]


def nvcc_ptx(source, names, arch="sm_90"):
    """PTX text of ``source`` compiled by nvcc for ``arch``; raises CompileError with nvcc's
    messages when it does not compile."""
    with tempfile.TemporaryDirectory() as tmp:
        cu = os.path.join(tmp, "kernels.cu")
        with open(cu, "w") as f:
            f.write(source + "\n")
            for i, n in enumerate(names):      # taking the address instantiates the template
                f.write(f"void* minidl_kernel_{i}() {{ return (void*)&{n}; }}\n")
        ptx = os.path.join(tmp, "kernels.ptx")
        _compile(["nvcc", "-std=c++14", f"-arch={arch}", "-ptx", cu, "-o", ptx])
        with open(ptx) as f:
            return f.read()


class HostModule:
    """A CUDA ``RawModule`` source built for the host; see the module docstring."""

    def __init__(self, source, names, max_threads=8):
        self._names, self._source, self.max_threads = list(names), source, max_threads
        self._tmp = tempfile.TemporaryDirectory()
        try:
            cpp = os.path.join(self._tmp.name, "kernels.cpp")
            lib = os.path.join(self._tmp.name, "kernels.so")
            with open(cpp, "w") as f:
                f.write(_SHIM + source + "\n")
                for i, n in enumerate(names):
                    params = _parameters(source, n)
                    f.write(_LAUNCHER.format(i=i, name=n,
                                             params=", ".join(p[0] for p in params),
                                             args=", ".join(p[3] for p in params)))
            _compile([host_compiler(), "-std=c++14", "-O1", "-shared", "-fPIC", "-pthread",
                      "-Wall", "-Werror", "-Wno-unused-variable", cpp, "-o", lib])
            self._lib = ctypes.CDLL(lib)
        except BaseException:
            self._tmp.cleanup()
            raise

    def close(self):
        self._tmp.cleanup()

    def get_function(self, name):
        if name not in self._names:
            raise KeyError(f"kernel {name!r} is not among the compiled names {self._names}")
        fn = getattr(self._lib, f"minidl_launch_{self._names.index(name)}")
        return _HostKernel(name, fn, kernel_signature(self._source, name), self.max_threads,
                           _grid_stride(self._source, name))


def _grid_stride(source, name):
    """Whether kernel ``name`` loops over its items with a grid-wide stride (its body reads
    ``gridDim``): then any grid covers all items, and one block is emulated, however many the
    launch asks for (thousands of blocks of real threads would be slow for nothing)."""
    base = name.split("<")[0]
    start = re.search(r"__global__\s+void\s+" + re.escape(base) + r"\s*\(", source).end()
    end = source.find("__global__", start)
    return "gridDim" in source[start:None if end < 0 else end]


class _HostKernel:
    def __init__(self, name, fn, signature, max_threads, grid_stride):
        self.name, self.fn, self.signature, self.max_threads = name, fn, signature, max_threads
        self.grid_stride = grid_stride
        self.calls = 0

    def __call__(self, grid, block, args):
        if not (isinstance(grid, tuple) and isinstance(block, tuple) and len(grid) == 1
                and len(block) == 1 and min(grid + block) >= 1):
            raise ValueError(f"{self.name}: grid and block must be 1-tuples of positive ints, "
                             f"got {grid!r}, {block!r}")
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name}: takes {len(self.signature)} arguments, got "
                            f"{len(args)}")
        types = [ctypes.c_uint, ctypes.c_uint]
        values = [1 if self.grid_stride else int(grid[0]), min(int(block[0]), self.max_threads)]
        for k, (a, (pointer, dtype)) in enumerate(zip(args, self.signature)):
            if pointer and isinstance(a, np.ndarray) and a.dtype == dtype:
                types.append(ctypes.c_void_p)
                values.append(a.ctypes.data)
            elif not pointer and isinstance(a, np.generic) and a.dtype == dtype:
                types.append(_CTYPES[a.dtype])
                values.append(a.item())
            else:
                want = f"a {dtype} array" if pointer else f"a NumPy {dtype} scalar"
                raise TypeError(f"{self.name}: argument {k} must be {want}, got "
                                f"{type(a).__name__} {a!r}")
        self.fn.argtypes, self.fn.restype = types, None
        self.fn(*values)
        self.calls += 1
