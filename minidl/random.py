"""Seeded random number generators, one per device, behind ``minidl.manual_seed``.

All randomness in minidl (factories such as ``randn``, ``nn.init``, dropout masks) draws from
``default_generator(device)``. ``manual_seed(s)`` resets every generator, so a seeded program
repeats itself exactly on the CPU. The CPU generator is NumPy's PCG64.

The CUDA generator is counter-based: Philox4x32-10 (the generator of cuRAND's Philox and of
PyTorch's CUDA generator; its kernels are below) keyed by the seed. Each value is a pure function
of (seed, draw number), so the stream's position is one host integer, the offset, advanced on
the host by every draw: ``get_state`` / ``set_state`` save and restore (seed, offset), exactly
and without touching the GPU (no generator object is made, no device memory freed, nothing
read back). Gradient checkpointing relies on this to replay the dropout masks of its forward
pass. Its stream differs from the CPU's. Draws are refused while a CUDA graph is captured
(``minidl.cuda_graph``): a graph would replay the offset it recorded, so every replay would
draw the same numbers.

Uniform samples lie in [low, high) in the requested dtype: float16 samples are drawn on a
grid of 2^-11 (rounding finer samples could give 1.0), and a sample that rounds to ``high``
(a narrow range in float32, say) is moved to the largest value below it.
"""
from __future__ import annotations

import json

import numpy as np

from . import backend
from ._checks import check_int

_INITIAL_SEED = 0x5EED
_seed = _INITIAL_SEED
_generators = {}   # Device -> Generator


_SOURCE = r"""
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
// generator of cuRAND's Philox and of PyTorch's CUDA generator): 128 random bits from a 64-bit
// counter (words 0-1, words 2-3 zero) and a 64-bit key. Draw number ``offset + g`` of a
// stream is a pure function of (key, offset + g), so a stream's position is one host integer.
__device__ __forceinline__ void rng_philox(unsigned long long ctr, unsigned long long key,
                                           unsigned int* r) {
    unsigned int c0 = (unsigned int)ctr, c1 = (unsigned int)(ctr >> 32), c2 = 0u, c3 = 0u;
    unsigned int k0 = (unsigned int)key, k1 = (unsigned int)(key >> 32);
    for (int i = 0; i < 10; ++i) {
        const unsigned long long p0 = 0xD2511F53ull * c0;
        const unsigned long long p1 = 0xCD9E8D57ull * c2;
        c0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0;
        c2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1;
        c1 = (unsigned int)p1;
        c3 = (unsigned int)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    r[0] = c0;
    r[1] = c1;
    r[2] = c2;
    r[3] = c3;
}

// value k of a draw: the raw word (unsigned int), or uniform in [0, 1): 24 random bits per
// float (word k), 53 per double (words 2k, 2k+1)
__device__ __forceinline__ unsigned int rng_unit(const unsigned int* r, int k, unsigned int) {
    return r[k];
}
__device__ __forceinline__ float rng_unit(const unsigned int* r, int k, float) {
    return (float)(r[k] >> 8) * 5.9604644775390625e-08f;                      // 2^-24
}
__device__ __forceinline__ double rng_unit(const unsigned int* r, int k, double) {
    const unsigned long long m = (unsigned long long)(r[2 * k] >> 5) * 67108864ull
                                 + (r[2 * k + 1] >> 6);
    return (double)m * 1.1102230246251565404236316680908203125e-16;           // 2^-53
}

// Box-Muller in double: the standard normal pair of draw words (u1 in (0, 1], u2 in [0, 1));
// 32-bit uniforms for float (two pairs per draw), 53-bit ones for double (one pair)
template <typename T>
__device__ __forceinline__ void rng_normal_pair(const unsigned int* r, int pair, double* z) {
    double u1, u2;
    if (sizeof(T) == 4) {
        u1 = ((double)r[2 * pair] + 1.0) * 2.3283064365386962890625e-10;         // 2^-32
        u2 = (double)r[2 * pair + 1] * 2.3283064365386962890625e-10;
    } else {
        u1 = 1.0 - rng_unit(r, 0, 0.0);
        u2 = rng_unit(r, 1, 0.0);
    }
    const double rad = sqrt(-2.0 * log(u1));
    const double theta = 6.283185307179586476925286766559 * u2;
    z[0] = rad * cos(theta);
    z[1] = rad * sin(theta);
}

// out[per g + k] = value k of draw offset + g: raw words (T = unsigned int) or uniform
// samples, or with ``normal`` standard normal ones; 4 words or floats, or 2 doubles, per draw
template <typename T>
__global__ void random_kernel(T* __restrict__ out, long long n, unsigned long long key,
        unsigned long long offset, int normal) {
    const int per = sizeof(T) == 4 ? 4 : 2;
    const long long groups = (n + per - 1) / per;
    for (long long g = blockIdx.x * (long long)blockDim.x + threadIdx.x; g < groups;
         g += (long long)blockDim.x * gridDim.x) {
        unsigned int r[4];
        rng_philox(offset + (unsigned long long)g, key, r);
        double z[4];
        if (normal)
            for (int pair = 0; 2 * pair < per; ++pair) rng_normal_pair<T>(r, pair, z + 2 * pair);
        for (int k = 0; k < per && per * g + k < n; ++k)
            out[per * g + k] = normal ? (T)z[k] : rng_unit(r, k, (T)0);
    }
}
"""

_CTYPES = {np.dtype(np.uint32): "unsigned int", np.dtype(np.float32): "float",
           np.dtype(np.float64): "double"}
_NAMES = tuple(f"random_kernel<{c}>" for c in _CTYPES.values())
_THREADS = 256
_MASK64 = (1 << 64) - 1
_module = None          # the compiled RawModule of _SOURCE (on first use)
_kernels = {}           # name -> (module, kernel)


def _per_draw(kind, dtype):
    """How many values of ``kind`` ("bits", "uniform", "normal") one Philox draw gives."""
    if kind == "bits":
        return 4
    return 4 if np.dtype(dtype).itemsize == 4 else 2


def _philox_fill(kind, shape, dtype, key, offset):
    """A new CuPy array of ``shape`` filled with Philox4x32-10 values of ``kind`` from draws
    ``offset, offset + 1, ...`` of stream ``key``: "bits" (uint32 words), "uniform" ([0, 1))
    or "normal" (standard normal), float32 or float64. One launch on the current stream,
    asynchronous, nothing read back; the caller advances its offset by
    ``ceil(size / _per_draw(kind, dtype))``."""
    global _module
    cp = backend.cupy_module()
    dtype = np.dtype(np.uint32 if kind == "bits" else dtype)
    out = cp.empty(shape, dtype)
    n = out.size
    if n:
        if _module is None:
            _module = cp.RawModule(code=_SOURCE, options=("-std=c++14",), name_expressions=_NAMES)
        name = f"random_kernel<{_CTYPES[dtype]}>"
        found = _kernels.get(name)
        if found is None or found[0] is not _module:
            found = _kernels[name] = (_module, _module.get_function(name))
        groups = -(-n // _per_draw(kind, dtype))
        blocks = max(1, min((groups + _THREADS - 1) // _THREADS, 1 << 16))
        found[1]((blocks,), (_THREADS,), (out, np.int64(n), np.uint64(key & _MASK64),
                                            np.uint64(offset & _MASK64),
                                            np.int32(kind == "normal")))
    return out


class Generator:
    """A random stream on one device, drawing arrays of a requested dtype."""

    def __init__(self, device="cpu", seed=_INITIAL_SEED):
        self.device = backend.Device(device)
        self.seed(seed)

    def seed(self, seed):
        """Restart the stream from ``seed`` (a non-negative int)."""
        self._seed = check_int("manual_seed", "seed", seed, 0)
        if self.device.type == "cpu":
            self._rng = np.random.Generator(np.random.PCG64(self._seed))
        else:
            self._offset = 0        # Philox draws used so far (see the module docstring)

    def _cuda(self):
        backend.refuse_in_capture("drawing random numbers on the GPU (dropout, say)")
        return backend.cupy_module().cuda.Device(self.device.index)

    def _philox(self, kind, shape, dtype):
        """Philox values of ``kind`` ("bits", "uniform", "normal") on this GPU; advances the
        offset on the host."""
        with self._cuda():
            out = _philox_fill(kind, shape, dtype, self._seed, self._offset)
        self._offset += -(-out.size // _per_draw(kind, dtype))
        return out

    def uniform(self, shape, dtype=np.float32, low=0.0, high=1.0):
        """Uniform samples in [low, high) of the given shape and dtype."""
        dtype = np.dtype(dtype)
        native = dtype in (np.float32, np.float64)
        if self.device.type == "cpu":
            u = self._rng.random(shape, dtype=dtype) if native else self._rng.random(shape)
        else:
            u = self._philox("uniform", shape, dtype if native else np.float32)
        u = _unit(u, dtype)
        if low != 0.0 or high != 1.0:
            u = u * (high - low) + low
            u = _clip_to(u.astype(dtype, copy=False), low, high)
        return u

    def normal(self, shape, dtype=np.float32, mean=0.0, std=1.0):
        """Normal samples with the given mean and std."""
        dtype = np.dtype(dtype)
        native = dtype in (np.float32, np.float64)
        if self.device.type == "cpu":
            z = self._rng.standard_normal(shape, dtype=dtype) if native else \
                self._rng.standard_normal(shape).astype(dtype)
        else:
            z = self._philox("normal", shape, dtype if native else np.float32)
            z = z.astype(dtype, copy=False)
        if mean != 0.0 or std != 1.0:
            z = (z * std + mean).astype(dtype, copy=False)
        return z

    def _bits64(self, shape):
        """Uniform uint64 values on this GPU (two Philox words each)."""
        n = int(np.prod(shape, dtype=np.int64))
        words = self._philox("bits", (n, 2), None).astype(np.uint64)
        return ((words[:, 0] << np.uint64(32)) | words[:, 1]).reshape(shape)

    def integers(self, low, high, shape, dtype=np.int64):
        """Integers uniformly drawn from [low, high)."""
        if self.device.type == "cpu":
            return self._rng.integers(low, high, size=shape, dtype=dtype)
        if not high > low:
            raise ValueError(f"integers: need low < high, got low={low}, high={high}")
        span = int(high) - int(low)
        if span > 1 << 64:
            raise ValueError(f"integers: the range [{low}, {high}) is wider than 2^64")
        r = self._bits64(shape)
        if span < 1 << 64:      # modulo bias below span / 2^64: negligible
            r %= np.uint64(span)
        return (r.astype(np.int64) + np.int64(low)).astype(dtype, copy=False)

    def permutation(self, n):
        """A random permutation of range(n) as an int64 array."""
        if self.device.type == "cpu":
            return self._rng.permutation(n)
        xp = backend.cupy_module()
        return xp.argsort(self._bits64((int(n),))).astype(np.int64, copy=False)

    def get_state(self):
        """The stream's state as a JSON string: the PCG64 state on the CPU, the seed and the
        offset (Philox draws used) on a GPU. Reads nothing from the device."""
        if self.device.type == "cpu":
            return json.dumps(self._rng.bit_generator.state)
        return json.dumps({"seed": self._seed, "offset": self._offset})

    def set_state(self, state):
        """Restore a state from ``get_state`` (on a GPU: host integers only, no device work;
        a state without an offset, as older versions saved, starts at the seed)."""
        data = json.loads(state)
        if self.device.type == "cpu":
            self._rng.bit_generator.state = data
            return
        seed, offset = data.get("seed"), data.get("offset", 0)
        for name, v in (("seed", seed), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"set_state: the {self.device} state's {name} must be a "
                                 f"non-negative int, got {v!r}")
        self._seed, self._offset = seed, offset


def _unit(u, dtype):
    """Uniform samples ``u`` in [0, 1) (float32/64) as ``dtype``: a float type with fewer
    mantissa bits gets them floored onto its grid first, so none rounds up to 1.0."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and np.finfo(dtype).nmant < np.finfo(u.dtype).nmant:
        scale = float(2 ** (np.finfo(dtype).nmant + 1))
        xp = backend.xp_of(u)
        u = xp.floor(u * scale) * (1.0 / scale)            # exact: powers of two
    return u.astype(dtype, copy=False)


def _clip_to(u, low, high):
    """``u`` (in place when an array) with the samples that rounded outside [low, high) moved
    to its nearest value in u's dtype (they can only have rounded onto ``high``, or below a
    ``low`` that lies between two representable values)."""
    if u.dtype.kind != "f" or not low < high:
        return u
    top = np.array(high, u.dtype)
    if float(top) >= high:
        top = np.nextafter(top, np.array(-np.inf, u.dtype))
    bottom = np.array(low, u.dtype)
    if float(bottom) < low:
        bottom = np.nextafter(bottom, np.array(np.inf, u.dtype))
    if bottom > top:                  # no value of the dtype lies in [low, high)
        return u
    xp = backend.xp_of(u)
    return xp.clip(u, u.dtype.type(bottom), u.dtype.type(top),
                   out=u if isinstance(u, xp.ndarray) else None)


def manual_seed(seed):
    """Seed every device's default generator (like ``torch.manual_seed``)."""
    global _seed
    _seed = check_int("manual_seed", "seed", seed, 0)
    for gen in _generators.values():
        gen.seed(_seed)


def initial_seed():
    """The seed last given to ``manual_seed`` (or the built-in default)."""
    return _seed


def default_generator(device="cpu"):
    """The shared generator of ``device``, created on first use from the current seed."""
    dev = backend.Device(device)
    gen = _generators.get(dev)
    if gen is None:
        gen = _generators[dev] = Generator(dev, _seed)
    return gen


def get_rng_state():
    """States of all generators created so far, as ``{device string: state string}``."""
    return {str(dev): gen.get_state() for dev, gen in _generators.items()}


def set_rng_state(states):
    """Restore states saved by ``get_rng_state``."""
    for dev, state in states.items():
        default_generator(dev).set_state(state)
