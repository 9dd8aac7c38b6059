"""The seeded generators: the CUDA generator is Philox4x32-10 keyed by the seed, its state a
(seed, offset) pair of host integers, so get_state/set_state restore the stream's position
exactly (gradient checkpointing replays dropout masks with it); uniform samples stay in
[low, high) after the cast to the requested dtype, on every device."""
import json
import shutil

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import random as mrandom
from tests import cuda_emulator

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
needs_cxx = pytest.mark.skipif(cuda_emulator.host_compiler() is None, reason="needs g++")
M32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    """Reference Philox4x32-10 (Random123's philox4x32_R(10, ...)) in Python integers."""
    c, k = list(ctr), list(key)
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & M32, (p0 >> 32) ^ c[3] ^ k[1], p0 & M32]
        k = [(k[0] + 0x9E3779B9) & M32, (k[1] + 0xBB67AE85) & M32]
    return c


def test_reference_philox_matches_the_published_known_answers():
    assert philox4x32_10([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C,
                                                    0x9B00DBD8]
    assert philox4x32_10([M32] * 4, [M32, M32]) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                     0x6D5451FD]
    assert philox4x32_10([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
                         [0xA4093822, 0x299F31D0]) == [0xD16CFE09, 0x94FDCCEB, 0x5001E420,
                                                       0x24126EA1]


@needs_nvcc
def test_random_kernels_compile_for_the_h100():
    ptx = cuda_emulator.nvcc_ptx(mrandom._SOURCE, mrandom._NAMES)
    assert ptx.count(".entry") == len(mrandom._NAMES)


@pytest.fixture(scope="module")
def random_host_module():
    if cuda_emulator.host_compiler() is None:
        pytest.skip("needs g++")
    module = cuda_emulator.HostModule(mrandom._SOURCE, mrandom._NAMES)
    yield module
    module.close()


@needs_cxx
def test_emulated_kernels_give_the_reference_stream(random_host_module):
    key, offset = 0x123456789ABCDEF0, (1 << 32) - 2          # the counter carries into word 1
    words = np.zeros(4 * 5 - 1, np.uint32)
    random_host_module.get_function("random_kernel<unsigned int>")(
        (1,), (4,), (words, np.int64(words.size), np.uint64(key), np.uint64(offset),
                     np.int32(0)))
    want = []
    for g in range(5):
        ctr = offset + g
        want += philox4x32_10([ctr & M32, ctr >> 32, 0, 0], [key & M32, key >> 32])
    np.testing.assert_array_equal(words, np.array(want[:words.size], np.uint32))
    u32 = np.zeros(7, np.float32)
    random_host_module.get_function("random_kernel<float>")(
        (1,), (4,), (u32, np.int64(7), np.uint64(key), np.uint64(offset), np.int32(0)))
    np.testing.assert_array_equal(u32, (np.array(want[:7], np.uint32) >> 8) * 2.0 ** -24)
    u64 = np.zeros(3, np.float64)
    random_host_module.get_function("random_kernel<double>")(
        (1,), (4,), (u64, np.int64(3), np.uint64(key), np.uint64(offset), np.int32(0)))
    w = np.array(want, np.uint64)
    ref = ((w[0::2] >> 5) * 2.0 ** 26 + (w[1::2] >> 6)) * 2.0 ** -53
    np.testing.assert_array_equal(u64, ref[[0, 1, 2]])


@needs_cxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulated_kernels_have_the_right_distributions(random_host_module, dtype):
    n = 200_000
    u, z = np.zeros(n, dtype), np.zeros(n, dtype)
    kernel = random_host_module.get_function(
        f"random_kernel<{'float' if dtype == np.float32 else 'double'}>")
    for normal, out in ((0, u), (1, z)):
        kernel((64,), (8,), (out, np.int64(n), np.uint64(7), np.uint64(0), np.int32(normal)))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.001
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z ** 4) - 3.0) < 0.1                  # kurtosis of a normal
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


# -- the generators ---------------------------------------------------------------------------
def test_float16_uniform_samples_stay_below_one():
    u = minidl.rand(200_000, dtype=np.float16).numpy()
    assert u.dtype == np.float16 and u.min() >= 0 and u.max() < 1.0
    assert u.max() == np.float16(1 - 2 ** -11)               # the whole [0, 1) grid is used


def test_float16_uniform_keeps_the_cpu_stream():
    g = mrandom.Generator("cpu", 3)
    u = g.uniform((1000,), np.float16)
    ref = np.random.Generator(np.random.PCG64(3)).random(1000)
    np.testing.assert_array_equal(u, (np.floor(ref * 2048) / 2048).astype(np.float16))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_uniform_stays_in_a_narrow_range(device, dtype):
    low = 1.0
    high = float(np.nextafter(np.array(1.0, dtype), np.array(2.0, dtype)))   # one ulp up
    u = mrandom.default_generator(device).uniform((5000,), dtype, low, high)
    u = minidl.Tensor(u).numpy()
    assert u.dtype == dtype and (u == low).all()
    u = mrandom.default_generator(device).uniform((5000,), np.float32, 0.0, 1e-30)
    u = minidl.Tensor(u).numpy()
    assert u.min() >= 0 and u.max() < np.float32(1e-30)


def test_narrow_range_fix_leaves_other_samples_alone():
    g1, g2 = mrandom.Generator("cpu", 1), mrandom.Generator("cpu", 1)
    np.testing.assert_array_equal(g1.uniform((1000,), np.float32, -2.0, 3.0),
                                  g2.uniform((1000,), np.float32) * 5.0 - 2.0)


@pytest.mark.cuda
def test_cuda_state_is_the_seed_and_the_offset_and_restores_the_stream():
    g = minidl.default_generator("cuda")
    g.uniform((10,))
    state = g.get_state()
    assert json.loads(state) == {"seed": 0, "offset": 3}      # ceil(10 / 4) draws of 4 floats
    a = minidl.Tensor(g.uniform((1001,))).numpy()
    b = minidl.Tensor(g.normal((7,), np.float64)).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(minidl.Tensor(g.uniform((1001,))).numpy(), a)
    np.testing.assert_array_equal(minidl.Tensor(g.normal((7,), np.float64)).numpy(), b)
    c = minidl.Tensor(g.uniform((1001,))).numpy()
    assert not np.array_equal(c, a)                           # the stream moved on
    g.set_state(json.dumps({"seed": 0}))                      # an old state: from the seed
    assert json.loads(g.get_state()) == {"seed": 0, "offset": 0}
    with pytest.raises(ValueError, match="offset"):
        g.set_state(json.dumps({"seed": 0, "offset": -1}))


@pytest.mark.cuda
def test_cuda_draws_make_no_generator_objects(monkeypatch):
    import cupy

    def refuse(*args, **kwargs):
        raise AssertionError("a cuRAND generator was created")
    monkeypatch.setattr(cupy.random, "RandomState", refuse)
    minidl.manual_seed(4)
    g = minidl.default_generator("cuda")
    for _ in range(3):
        g.set_state(g.get_state())
        g.uniform((5,))


@pytest.mark.cuda
def test_cuda_draws_have_the_right_ranges():
    g = minidl.default_generator("cuda")
    u = minidl.Tensor(g.uniform((4000,), np.float16)).numpy()
    assert u.dtype == np.float16 and u.min() >= 0 and u.max() < 1
    z = minidl.Tensor(g.normal((4000,), np.float32, 2.0, 3.0)).numpy()
    assert z.dtype == np.float32 and abs(z.mean() - 2.0) < 0.3 and abs(z.std() - 3.0) < 0.3
    i = minidl.randint(-3, 5, (4000,), device="cuda").numpy()
    assert i.dtype == np.int64 and set(np.unique(i)) == set(range(-3, 5))
    p = minidl.randperm(100, device="cuda").numpy()
    assert p.dtype == np.int64 and sorted(p) == list(range(100))
    assert not np.array_equal(p, np.arange(100))
    x = minidl.randn(3, 4, device="cuda", dtype=np.float64)
    assert x.dtype == np.float64 and x.shape == (3, 4)


@pytest.mark.cuda
def test_manual_seed_repeats_the_cuda_stream():
    minidl.manual_seed(11)
    a = minidl.rand(50, device="cuda").numpy()
    minidl.manual_seed(11)
    np.testing.assert_array_equal(minidl.rand(50, device="cuda").numpy(), a)
    minidl.manual_seed(12)
    assert not np.array_equal(minidl.rand(50, device="cuda").numpy(), a)


def _dropout_twice_checkpointed(device, steps=3):
    """Per step: whether y == x * dy/dx held (forward and backward used the same masks), and
    the gradient."""
    x0 = np.random.default_rng(1).standard_normal((4, 1000)).astype(np.float32)
    out = []
    for _ in range(steps):
        x = minidl.tensor(x0, device=device, requires_grad=True)
        a = F.dropout(x, 0.5, True)                           # a draw before the block
        y = F.checkpoint(lambda t: F.dropout(t, 0.5, True) * 2.0, [a])
        y.sum().backward()
        g = x.grad.numpy()
        out.append((np.allclose(y.numpy(), x0 * g), g))
    return out


def test_checkpoint_replays_dropout_masks_and_moves_on(device):
    runs = _dropout_twice_checkpointed(device)
    assert all(ok for ok, _ in runs)
    assert not np.array_equal(runs[0][1], runs[1][1])        # fresh masks every step
    assert not np.array_equal(runs[1][1], runs[2][1])


def test_checkpoint_replays_a_generator_first_made_inside_it(device, monkeypatch):
    monkeypatch.setattr(mrandom, "_generators", {})
    x0 = np.ones((2, 500), np.float32)
    x = minidl.tensor(x0, device=device, requires_grad=True)
    y = F.checkpoint(lambda t: F.dropout(t, 0.5, True), [x])
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), x.grad.numpy())
