"""Seeded random number generators, one per device, behind ``minidl.manual_seed``.

All randomness in minidl (factories such as ``randn``, ``nn.init``, dropout masks) draws from
``default_generator(device)``. ``manual_seed(s)`` resets every generator, so a seeded program
repeats itself exactly on the CPU. The CPU generator is NumPy's PCG64; the CUDA one is CuPy's
``RandomState`` seeded from the same seed (its stream differs from the CPU's).
"""
from __future__ import annotations

import json

import numpy as np

from . import backend

_INITIAL_SEED = 0x5EED
_seed = _INITIAL_SEED
_generators = {}   # Device -> Generator


class Generator:
    """A random stream on one device, drawing arrays of a requested dtype."""

    def __init__(self, device="cpu", seed=_INITIAL_SEED):
        self.device = backend.Device(device)
        self.seed(seed)

    def seed(self, seed):
        """Restart the stream from ``seed`` (a non-negative int)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
        self._seed = int(seed)
        if self.device.type == "cpu":
            self._rng = np.random.Generator(np.random.PCG64(self._seed))
        else:
            cp = backend.cupy_module()
            with cp.cuda.Device(self.device.index):
                self._rng = cp.random.RandomState(self._seed)

    def _cuda(self):
        backend.refuse_in_capture("drawing random numbers on the GPU (dropout, say)")
        return backend.cupy_module().cuda.Device(self.device.index)

    def uniform(self, shape, dtype=np.float32, low=0.0, high=1.0):
        """Uniform samples in [low, high) of the given shape and dtype."""
        if self.device.type == "cpu":
            u = self._rng.random(shape, dtype=np.dtype(dtype)) if np.dtype(dtype) in (
                np.float32, np.float64) else self._rng.random(shape).astype(dtype)
        else:
            with self._cuda():
                u = self._rng.random_sample(shape, dtype=dtype)
        if low != 0.0 or high != 1.0:
            u = u * (high - low) + low
            u = u.astype(dtype, copy=False)
        return u

    def normal(self, shape, dtype=np.float32, mean=0.0, std=1.0):
        """Normal samples with the given mean and std."""
        if self.device.type == "cpu":
            z = self._rng.standard_normal(shape, dtype=np.dtype(dtype)) if np.dtype(dtype) in (
                np.float32, np.float64) else self._rng.standard_normal(shape).astype(dtype)
        else:
            with self._cuda():
                z = self._rng.standard_normal(shape, dtype=dtype)
        if mean != 0.0 or std != 1.0:
            z = (z * std + mean).astype(dtype, copy=False)
        return z

    def integers(self, low, high, shape, dtype=np.int64):
        """Integers uniformly drawn from [low, high)."""
        if self.device.type == "cpu":
            return self._rng.integers(low, high, size=shape, dtype=dtype)
        with self._cuda():
            return self._rng.randint(low, high, size=shape, dtype=dtype)

    def permutation(self, n):
        """A random permutation of range(n) as an int64 array."""
        if self.device.type == "cpu":
            return self._rng.permutation(n)
        with self._cuda():
            return self._rng.permutation(n)

    def get_state(self):
        """The stream's state as a JSON string (CPU only; CUDA streams restart from the seed)."""
        if self.device.type == "cpu":
            return json.dumps(self._rng.bit_generator.state)
        return json.dumps({"seed": self._seed})

    def set_state(self, state):
        """Restore a state from ``get_state``."""
        data = json.loads(state)
        if self.device.type == "cpu":
            self._rng.bit_generator.state = data
        elif not backend.capturing():   # a CUDA-graph capture draws nothing (refused), so
            self.seed(data["seed"])     # there is nothing to restore, and no new generator


def manual_seed(seed):
    """Seed every device's default generator (like ``torch.manual_seed``)."""
    global _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _seed = int(seed)
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
