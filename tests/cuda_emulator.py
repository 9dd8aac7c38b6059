"""Check hand-written CUDA kernels on a machine without a GPU.

Two tools for the ``RawModule`` sources in ``minidl/kernels``:

- ``nvcc_ptx(source, names)``: compile the source for the H100 (sm_90) to PTX with nvcc, forcing
  every template instantiation in ``names``; catches what the GPU's compiler would refuse.
- ``HostModule(source, names)``: compile the same source with the host C++ compiler behind a
  small shim (``__global__`` dropped, one block of one thread) and load it with ctypes. Its
  ``get_function(name)`` returns a callable with CuPy's launch signature
  ``kernel(grid, block, args)`` that runs the kernel body on the host over NumPy arrays. A
  grid-stride kernel run by one thread visits every index, so this checks the kernel's index
  arithmetic and the argument list the Python side passes (order, count and C types: NumPy
  scalars only, as CuPy needs; a plain Python number is refused). Kernels that use shared
  memory, barriers or atomics are outside what it can run.
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
struct minidl_dim3 { unsigned int x, y, z; };
static const minidl_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0};
static const minidl_dim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
#define __forceinline__ inline
"""

_CTYPES = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
           np.dtype(np.uint32): ctypes.c_uint32, np.dtype(np.uint64): ctypes.c_uint64,
           np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


def _symbol(i):
    return f"minidl_kernel_{i}"


def _instantiations(names, host):
    """Source lines that take each kernel's address, which instantiates the template; on the
    host they are exported as ``minidl_kernel_<i>`` for ctypes."""
    if host:
        return "\n".join(f'extern "C" {{ void* {_symbol(i)} = (void*)&{n}; }}'
                          for i, n in enumerate(names))
    return "\n".join(f"void* {_symbol(i)}() {{ return (void*)&{n}; }}"
                     for i, n in enumerate(names))


def nvcc_ptx(source, names, arch="sm_90"):
    """PTX text of ``source`` compiled by nvcc for ``arch``; raises CompileError with nvcc's
    messages when it does not compile."""
    with tempfile.TemporaryDirectory() as tmp:
        cu = os.path.join(tmp, "kernels.cu")
        with open(cu, "w") as f:
            f.write(source + "\n" + _instantiations(names, host=False) + "\n")
        ptx = os.path.join(tmp, "kernels.ptx")
        _compile(["nvcc", "-std=c++14", f"-arch={arch}", "-ptx", cu, "-o", ptx])
        with open(ptx) as f:
            return f.read()


class CompileError(RuntimeError):
    pass


def _compile(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{cmd[0]} failed:\n{done.stderr}")


def host_compiler():
    return shutil.which("g++") or shutil.which("c++")


class HostModule:
    """A CUDA ``RawModule`` source built for the host; see the module docstring."""

    def __init__(self, source, names):
        self._tmp = tempfile.TemporaryDirectory()
        try:
            cpp = os.path.join(self._tmp.name, "kernels.cpp")
            lib = os.path.join(self._tmp.name, "kernels.so")
            with open(cpp, "w") as f:
                f.write(_SHIM + source + "\n" + _instantiations(names, host=True) + "\n")
            _compile([host_compiler(), "-std=c++14", "-O1", "-shared", "-fPIC", "-Wall",
                      "-Werror", "-Wno-unused-variable", cpp, "-o", lib])
            self._lib = ctypes.CDLL(lib)
        except BaseException:
            self._tmp.cleanup()
            raise
        self._names, self._source = list(names), source

    def close(self):
        self._tmp.cleanup()

    def get_function(self, name):
        if name not in self._names:
            raise KeyError(f"kernel {name!r} is not among the compiled names {self._names}")
        address = ctypes.c_void_p.in_dll(self._lib, _symbol(self._names.index(name))).value
        return _HostKernel(name, address, kernel_signature(self._source, name))


class _HostKernel:
    def __init__(self, name, address, signature):
        self.name, self.address, self.signature = name, address, signature
        self.calls = 0

    def __call__(self, grid, block, args):
        if not (isinstance(grid, tuple) and isinstance(block, tuple) and min(grid + block) >= 1):
            raise ValueError(f"{self.name}: grid and block must be tuples of positive ints, got "
                             f"{grid!r}, {block!r}")
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name}: takes {len(self.signature)} arguments, got "
                            f"{len(args)}")
        types, values = [], []
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
        ctypes.CFUNCTYPE(None, *types)(self.address)(*values)
        self.calls += 1


_SCALARS = {"int": np.dtype(np.int32), "long long": np.dtype(np.int64),
            "unsigned int": np.dtype(np.uint32), "unsigned long long": np.dtype(np.uint64),
            "float": np.dtype(np.float32), "double": np.dtype(np.float64)}


def kernel_signature(source, name):
    """The parameters of the ``__global__`` function ``name`` in ``source``: for each, a pair
    ``(is_pointer, dtype)``, the dtype being the scalar's or the pointed-to element's. Template
    parameter ``T`` is replaced by the type between the name's angle brackets."""
    base, _, targ = name.partition("<")
    targ = targ.rstrip(">").strip()
    m = re.search(r"__global__\s+void\s+" + re.escape(base) + r"\s*\(([^)]*)\)", source)
    if m is None:
        raise KeyError(f"no __global__ function {base} in the source")
    kinds = []
    for param in m.group(1).split(","):
        words = param.replace("*", " * ").split()
        pointer = "*" in words
        words = [w for w in words[:-1] if w not in ("const", "__restrict__", "*")]
        ctype = " ".join(targ if w == "T" else w for w in words)
        if ctype not in _SCALARS:
            raise ValueError(f"{name}: parameter {param.strip()!r} has a type the emulator "
                             "does not know")
        kinds.append((pointer, _SCALARS[ctype]))
    return kinds
